"""Train an LSNet on CIFAR-10 from scratch, reproducibly, on CPU.

The images (32x32 JPEGs in ``train.zip``) are decoded once into a uint8 array cached on disk; augmentation
runs on whole batches of tensors: a random resized crop (which also pads a little, like the classic
pad-and-crop), a horizontal flip and a bicubic upsample to the training size, all in one ``grid_sample``.
Evaluation uses the project's own preprocessing (``lsnet_deploy.preprocess``: bicubic resize of the short
side to floor(size / 0.9), centre crop, ImageNet mean/std), so the accuracy printed here is what
``lsnet_deploy.evaluate`` measures on the exported model.

Checkpoints follow the reference training format ``{"model", "optimizer", "epoch", "args"}``, with
``args.input_size`` an int, so ``lsnet_deploy.models.load_model`` reads them unchanged.

Example (the committed fixture)::

    nice -n 19 python benchmarks/train_cifar10.py --arch small --img-size 96 --epochs 30 --threads 2 \\
        --time-budget 75 --out /tmp/cifar_run --export-fixture tests/data/fixtures/cifar_small.pth
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import os
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
#: custom configurations for --arch (constructor arguments of ``create_model("lsnet", ...)``)
ARCHS = {
    "small": dict(embed_dim=[64, 128, 192, 256], depth=[1, 2, 3, 4], num_heads=[3, 3, 3, 4],
                  key_dim=[16, 16, 16, 16]),
    "tiny": dict(embed_dim=[32, 64, 96, 128], depth=[0, 1, 1, 2], num_heads=[2, 2, 2, 2],
                 key_dim=[16, 16, 16, 16]),
}
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see ``--help``)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="small", help=f"one of {sorted(ARCHS)}, or a variant name (lsnet_t)")
    p.add_argument("--model-config", default=None,
                   help="JSON constructor arguments for create_model('lsnet', ...); replaces --arch")
    p.add_argument("--img-size", type=int, default=96, help="training and evaluation input size (pixels)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3, help="peak AdamW learning rate")
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--warmup-epochs", type=float, default=2.0)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--min-scale", type=float, default=0.35, help="smallest crop area of random resized crops")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=False,
                   help="bfloat16 autocast for forward (weights and optimizer stay float32)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (smoke tests)")
    p.add_argument("--limit-train", type=int, default=None, help="train on the first N images per sorted order")
    p.add_argument("--limit-test", type=int, default=None, help="evaluate on a deterministic subset of N images")
    p.add_argument("--time-budget", type=float, default=None,
                   help="minutes; stop cleanly before an epoch that would not fit, or mid-epoch at the limit")
    p.add_argument("--anneal-by-time", action="store_true",
                   help="with --time-budget: the cosine schedule follows max(step, elapsed time) progress, so a "
                        "slower machine still ends annealed (not bit-reproducible across machines then)")
    p.add_argument("--train-zip", default=str(SHARED / "train.zip"))
    p.add_argument("--test-dir", default=str(SHARED / "test"))
    p.add_argument("--cache-dir", default=os.path.join(tempfile.gettempdir(), "lsnet_cifar10_cache"))
    p.add_argument("--out", default="runs/cifar10", help="folder for last.pth, log.jsonl")
    p.add_argument("--export-fixture", default=None,
                   help="write the float16 fixture checkpoint here and its card (.json) beside it")
    p.add_argument("--init-from", default=None, metavar="CHECKPOINT",
                   help="start from this checkpoint's weights (a training checkpoint or fixture of the same "
                        "architecture) with a fresh optimizer and schedule; its card, if beside it, goes in ours")
    p.add_argument("--export-only", default=None, metavar="CHECKPOINT",
                   help="skip training: export --export-fixture from this training checkpoint")
    p.add_argument("--eval-batch-size", type=int, default=100)
    p.add_argument("--log-every", type=int, default=50, help="log the running loss every N steps")
    return p.parse_args(argv)


# ------------------------------------------------------------------------------------------- data


def load_train_images(zip_path: str, cache_dir: str) -> tuple[np.ndarray, np.ndarray]:
    """All training images as (N, 32, 32, 3) uint8 and labels (N,) int64, decoded once and cached.

    The order is the sorted member names, so indices are the same on every machine.
    """
    from PIL import Image

    stat = os.stat(zip_path)
    key = hashlib.sha1(f"{os.path.abspath(zip_path)}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    cache = Path(cache_dir) / f"train_{key}.npz"
    if cache.is_file():
        with np.load(cache) as data:
            return data["images"], data["labels"]
    images, labels = [], []
    with zipfile.ZipFile(zip_path) as archive:
        names = sorted(n for n in archive.namelist() if n.lower().endswith((".jpg", ".jpeg", ".png")))
        for name in names:
            class_name = Path(name).parent.name
            with Image.open(io.BytesIO(archive.read(name))) as image:
                images.append(np.asarray(image.convert("RGB"), dtype=np.uint8))
            labels.append(CLASSES.index(class_name))
    images_array, labels_array = np.stack(images), np.asarray(labels, dtype=np.int64)
    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = cache.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(partial, images=images_array, labels=labels_array)
    os.replace(partial, cache)
    return images_array, labels_array


def load_test_inputs(test_dir: str, img_size: int, limit: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The test images preprocessed exactly as ``lsnet_deploy.evaluate`` does, as (N, 3, S, S) float32."""
    from lsnet_deploy.preprocess import Preprocessing, preprocess_one

    from lsnet_deploy.accuracy import list_images

    recipe = Preprocessing(input_size=(img_size, img_size))
    samples = list_images(test_dir, limit=limit)
    inputs = np.stack([preprocess_one(path, recipe) for path, _ in samples])
    return torch.from_numpy(inputs), torch.tensor([label for _, label in samples])


def augment(batch: torch.Tensor, size: int, min_scale: float, generator: torch.Generator) -> torch.Tensor:
    """Random resized crop + horizontal flip + bicubic resize to ``size``, normalized; (B, 3, size, size).

    Args:
        batch: uint8 (B, 32, 32, 3) images.
        size: output side.
        min_scale: smallest crop area, as a fraction of the image.
        generator: the random source (seeded by the caller).
    """
    n = batch.shape[0]
    x = batch.permute(0, 3, 1, 2).float().div_(255)
    area = torch.empty(n).uniform_(min_scale, 1.0, generator=generator)
    log_ratio = torch.empty(n).uniform_(math.log(3 / 4), math.log(4 / 3), generator=generator)
    ratio = log_ratio.exp()
    width = (area * ratio).sqrt().clamp(max=1.0)
    height = (area / ratio).sqrt().clamp(max=1.0)
    # centres may leave the image by up to 1/8 of its side (4 px at 32): the zero-padded crop of classic
    # CIFAR augmentation, and it keeps objects away from always-centred positions
    slack = 0.125
    cx = (torch.rand(n, generator=generator) * 2 - 1) * (1 - width + slack).clamp(min=0)
    cy = (torch.rand(n, generator=generator) * 2 - 1) * (1 - height + slack).clamp(min=0)
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = width * flip
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = height
    theta[:, 1, 2] = cy
    grid = F.affine_grid(theta, [n, 3, size, size], align_corners=False)
    out = F.grid_sample(x, grid, mode="bicubic", padding_mode="zeros", align_corners=False).clamp_(0, 1)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (out - mean) / std


# ---------------------------------------------------------------------------------------------- model


def model_config(args: argparse.Namespace) -> tuple[str, dict]:
    """(create_model name, constructor overrides) from --arch / --model-config."""
    if args.model_config:
        return "lsnet", dict(json.loads(args.model_config))
    if args.arch in ARCHS:
        return "lsnet", dict(ARCHS[args.arch])
    return args.arch, {}


def build_model(args: argparse.Namespace):
    """The LSNet to train, 10 classes at ``--img-size``."""
    from lsnet_deploy.models import create_model

    name, config = model_config(args)
    return create_model(name, num_classes=10, img_size=args.img_size, **config)


def learning_rate(step: int, total_steps: int, warmup_steps: int, peak: float, time_progress: float = 0.0) -> float:
    """Linear warmup then cosine decay to zero.

    ``time_progress`` (0..1, the elapsed share of a time budget) moves the decay ahead when it is further
    along than the step count.
    """
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    progress = max((step - warmup_steps) / max(1, total_steps - warmup_steps), time_progress)
    return peak * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


@torch.no_grad()
def evaluate_inputs(model, inputs: torch.Tensor, labels: torch.Tensor, batch_size: int,
                    channels_last: bool) -> tuple[float, float]:
    """(top-1, top-5) percent of ``model`` in float32 on preprocessed inputs."""
    model.eval()
    top1 = top5 = 0
    for start in range(0, len(inputs), batch_size):
        x = inputs[start:start + batch_size]
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        best = model(x).topk(5, dim=1).indices
        y = labels[start:start + batch_size]
        top1 += int((best[:, 0] == y).sum())
        top5 += int((best == y[:, None]).any(dim=1).sum())
    model.train()
    return 100.0 * top1 / len(inputs), 100.0 * top5 / len(inputs)


def checkpoint_args(args: argparse.Namespace, model) -> argparse.Namespace:
    """The Namespace saved in checkpoints: the options plus model name/config, ``input_size`` an int.

    Only plain data (str, int, float, bool, None, lists, dicts) so that weights-only loading accepts it.
    """
    name, config = model_config(args)
    saved = {k: v for k, v in vars(args).items() if v is None or isinstance(v, (str, int, float, bool))}
    saved.update(model=name, model_config=config, input_size=int(args.img_size), nb_classes=10,
                 classes=list(CLASSES), arch_config={k: (list(v) if isinstance(v, tuple) else v)
                                                     for k, v in model.config.items()})
    return argparse.Namespace(**saved)


def save_atomic(obj, path: Path) -> None:
    """torch.save to a temp file then rename: a cut-short run never leaves a half-written checkpoint."""
    partial = path.with_name(path.name + ".partial")
    torch.save(obj, partial)
    os.replace(partial, path)


# ---------------------------------------------------------------------------------------------- train


def train(args: argparse.Namespace) -> Path:
    """Train per ``args``; returns the path of the last checkpoint (``<out>/last.pth``)."""
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "log.jsonl"
    log = open(log_path, "a", buffering=1)

    def record(**entry):
        entry["time"] = round(time.time() - started, 1)
        log.write(json.dumps(entry) + "\n")
        print(json.dumps(entry), flush=True)

    started = time.time()
    images, labels = load_train_images(args.train_zip, args.cache_dir)
    if args.limit_train:
        # an evenly spread subset keeps every class in it
        keep = np.linspace(0, len(images) - 1, args.limit_train).round().astype(np.int64)
        images, labels = images[keep], labels[keep]
    images_t, labels_t = torch.from_numpy(images), torch.from_numpy(labels)
    test_x, test_y = load_test_inputs(args.test_dir, args.img_size, args.limit_test)

    model = build_model(args)
    if args.init_from:
        model.load_state_dict({k: v.float() if v.is_floating_point() else v
                               for k, v in load_training_checkpoint(Path(args.init_from))["model"].items()})
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    params = sum(p.numel() for p in model.parameters())
    decay = [p for n, p in model.named_parameters() if p.ndim > 1 and "attention_biases" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim > 1 and "attention_biases" not in n)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=args.lr)
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
    steps_per_epoch = len(images) // args.batch_size
    if steps_per_epoch < 1:
        raise SystemExit(f"error: {len(images)} training images is fewer than one batch of {args.batch_size}; "
                         "lower --batch-size")
    total_steps = steps_per_epoch * args.epochs
    warmup_steps = max(1, int(args.warmup_epochs * steps_per_epoch))
    generator = torch.Generator().manual_seed(args.seed)
    saved_args = checkpoint_args(args, model)
    record(event="start", params=params, steps_per_epoch=steps_per_epoch, total_steps=total_steps,
           train_images=len(images), test_images=len(test_x), setup_s=round(time.time() - started, 1))

    budget_s = args.time_budget * 60 if args.time_budget else math.inf
    train_started = time.time()

    def time_progress(step: int) -> float:
        if not (args.anneal_by_time and args.time_budget) or step < warmup_steps:
            return 0.0
        # aim to finish the decay one mean epoch before the budget, so the last epoch runs at low lr
        elapsed = time.time() - train_started
        epoch_s = elapsed / max(step / steps_per_epoch, 1e-9)
        available = budget_s - (train_started - started) - epoch_s
        return min(1.0, elapsed / max(available, 1.0))
    last_path = out / "last.pth"
    step = epochs_done = 0
    stop_reason = "completed"
    model.train()
    for epoch in range(args.epochs):
        epoch_started = time.time()
        if epochs_done and time.time() - started + (epoch_started - train_started) / epochs_done > budget_s:
            stop_reason = "time budget (next epoch would not fit)"
            break
        order = torch.randperm(len(images), generator=generator)
        loss_sum, seen = 0.0, 0
        for batch_index in range(steps_per_epoch):
            index = order[batch_index * args.batch_size:(batch_index + 1) * args.batch_size]
            x = augment(images_t[index], args.img_size, args.min_scale, generator)
            if args.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, total_steps, warmup_steps, args.lr, time_progress(step))
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
                logits = model(x)
            loss = criterion(logits.float(), labels_t[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            loss_sum += float(loss.detach()) * len(index)
            seen += len(index)
            if step % args.log_every == 0:
                record(event="step", epoch=epoch, step=step, loss=round(loss_sum / seen, 4),
                       lr=round(optimizer.param_groups[0]["lr"], 6),
                       s_per_step=round((time.time() - epoch_started) / (batch_index + 1), 3))
            if args.max_steps and step >= args.max_steps:
                stop_reason = "max steps"
                break
            if time.time() - started > budget_s:
                stop_reason = "time budget (mid-epoch)"
                break
        if stop_reason != "completed":
            if stop_reason == "max steps" or not last_path.exists():
                epochs_done += 1 if batch_index + 1 == steps_per_epoch else 0
                save_atomic({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                             "epoch": epochs_done, "args": saved_args}, last_path)
            break
        epochs_done = epoch + 1
        top1, top5 = evaluate_inputs(model, test_x, test_y, args.eval_batch_size, args.channels_last)
        save_atomic({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "epoch": epochs_done, "args": saved_args}, last_path)
        record(event="epoch", epoch=epochs_done, loss=round(loss_sum / max(seen, 1), 4), test_top1=top1,
               test_top5=top5, epoch_s=round(time.time() - epoch_started, 1))
    record(event="end", reason=stop_reason, epochs_completed=epochs_done, steps=step,
           train_s=round(time.time() - train_started, 1))
    log.close()
    summary = {"epochs_completed": epochs_done, "steps": step, "stop_reason": stop_reason, "params": params,
               "wall_s": round(time.time() - started, 1), "s_per_step": round((time.time() - train_started) / max(step, 1), 3)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return last_path


# --------------------------------------------------------------------------------------------- export


def load_training_checkpoint(path: Path) -> dict:
    """A reference-format checkpoint, loaded without executing code (weights_only)."""
    from lsnet_deploy.models.checkpoint import SAFE_GLOBALS

    with torch.serialization.safe_globals(SAFE_GLOBALS):
        return torch.load(path, map_location="cpu", weights_only=True)


def init_record(init_from: str | None) -> dict | None:
    """What a continued run started from: the checkpoint's hash and, when beside it, its own card."""
    if not init_from:
        return None
    path = Path(init_from)
    card = path.with_suffix(".json")
    return {"checkpoint": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "card": json.loads(card.read_text()) if card.is_file() else None}


def export_fixture(checkpoint: Path, fixture: Path, args: argparse.Namespace, command: str) -> dict:
    """Write the float16, optimizer-free fixture and its JSON card (accuracy of the float16 weights).

    The card's accuracy is measured by ``lsnet_deploy.evaluate`` on the model rebuilt from the fixture
    (float16 cast back to float32), so a test reproduces it exactly.
    """
    from lsnet_deploy.accuracy import evaluate
    from lsnet_deploy.models import load_model
    trained = load_training_checkpoint(checkpoint)
    half = {k: (v.half() if v.is_floating_point() else v) for k, v in trained["model"].items()}
    fixture.parent.mkdir(parents=True, exist_ok=True)
    save_atomic({"model": half, "optimizer": None, "epoch": trained["epoch"], "args": trained["args"]}, fixture)

    saved = trained["args"]
    torch.set_num_threads(args.threads)
    model = load_model(fixture, img_size=saved.input_size)
    report = evaluate(model, args.test_dir, batch_size=args.eval_batch_size)
    summary_path = checkpoint.parent / "summary.json"
    run = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    card = {
        "command": command,
        "model": saved.model, "model_config": saved.model_config, "arch_config": saved.arch_config,
        "params": sum(v.numel() for k, v in half.items() if not k.endswith(("num_batches_tracked", "_idxs",
                                                                           "running_mean", "running_var"))),
        "input_size": saved.input_size, "epochs": saved.epochs, "epochs_completed": trained["epoch"],
        "seed": saved.seed, "threads": saved.threads, "batch_size": saved.batch_size, "lr": saved.lr,
        "bf16": saved.bf16, "wall_s": run.get("wall_s"), "s_per_step": run.get("s_per_step"),
        "stop_reason": run.get("stop_reason"), "weights": "float16 (evaluated cast back to float32)",
        "eval": {"data": "cifar10/test (5,000 images, ImageFolder)", "preprocessing": "lsnet_deploy.preprocess "
                 f"bicubic resize {int(saved.input_size / 0.9)}, centre crop {saved.input_size}, ImageNet mean/std",
                 "batch_size": args.eval_batch_size, "eval_threads": args.threads,
                 "top1": report.top1, "top5": report.top5, "count": report.count, "correct_top1": report.correct},
        "init_from": init_record(args.init_from),
        "fixture_sha256": hashlib.sha256(fixture.read_bytes()).hexdigest(),
    }
    fixture.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    print(report.summary(), flush=True)
    return card


def main(argv: list[str] | None = None) -> int:
    """Entry point: train (unless --export-only), then export the fixture when asked."""
    args = parse_args(argv)
    command = "python benchmarks/train_cifar10.py " + " ".join(sys.argv[1:] if argv is None else argv)
    checkpoint = Path(args.export_only) if args.export_only else train(args)
    if args.export_fixture:
        export_fixture(checkpoint, Path(args.export_fixture), args, command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
