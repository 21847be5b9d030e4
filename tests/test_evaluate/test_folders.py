"""Folder layouts, labels and unreadable pictures: right answers or one clear message, never a crash."""

from __future__ import annotations

import json
import sys

import pytest

from lsnet_deploy.errors import UsageError
from lsnet_deploy.accuracy import evaluate, list_images

from .conftest import CLASSES


def test_folders_match_labels_by_name(cifar_model, make_folder):
    root = make_folder({"cat": ("cat", 10), "ship": ("ship", 10)})
    by_name = evaluate(cifar_model, root, labels=list(CLASSES))
    assert by_name.count == 20
    assert set(by_name.per_class) == {"cat", "ship"}
    assert by_name.top1 >= 50
    # without labels, sorted order would make the two folders classes 0 and 1 (airplane, automobile)
    with pytest.raises(UsageError, match="no labels"):
        evaluate(cifar_model, root)
    assert [index for _, index in list_images(root, labels=CLASSES)] == [3] * 10 + [8] * 10


def test_folder_not_among_labels_is_one_clear_error(cifar_model, make_folder):
    root = make_folder({"cat": ("cat", 2), "kitten": ("cat", 2)})
    with pytest.raises(UsageError) as info:
        evaluate(cifar_model, root, labels=list(CLASSES))
    message = str(info.value)
    assert "\n" not in message
    assert "'kitten'" in message and "'airplane'" in message and "rename" in message


def test_unreadable_image_is_counted_not_fatal(cifar_model, make_folder):
    root = make_folder({"airplane": ("airplane", 3), "automobile": ("automobile", 3)})
    (root / "airplane" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "automobile" / "notes.txt").write_text("not a picture, ignored")
    report = evaluate(cifar_model, root, labels=list(CLASSES))
    assert report.count == 6
    assert report.unreadable == 1
    path, reason = report.skipped[0]
    assert path.endswith("broken.jpg") and "\n" not in reason
    assert "1 unreadable" in report.summary()
    assert json.loads(json.dumps(report.to_dict()))["unreadable"] == 1


@pytest.mark.parametrize("case", ["no class folders", "empty class folders", "only unreadable", "missing"])
def test_unusable_folders_are_one_clear_error(cifar_model, tmp_path, case):
    root = tmp_path / "data"
    root.mkdir()
    if case == "empty class folders":
        (root / "cat").mkdir()
        (root / "dog").mkdir()
    elif case == "only unreadable":
        (root / "cat").mkdir()
        (root / "cat" / "a.jpg").write_bytes(b"garbage")
        (root / "cat" / "b.png").write_bytes(b"")
    elif case == "missing":
        root = tmp_path / "nowhere"
    expected = {"no class folders": "no class folders", "empty class folders": "no pictures",
                "only unreadable": "could be read", "missing": "no such folder"}[case]
    with pytest.raises(UsageError) as info:
        evaluate(cifar_model, root, labels=list(CLASSES))
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_more_folders_than_model_classes_is_one_clear_error(tiny_checkpoint, make_folder):
    from lsnet_deploy.models import load_model

    model = load_model(tiny_checkpoint, img_size=128)
    layout = {f"class{i:02d}": ("cat", 1) for i in range(model.num_classes + 1)}
    with pytest.raises(UsageError, match="class folders but the model outputs"):
        evaluate(model, make_folder(layout))


def test_limit_progress_and_order_are_deterministic(cifar_model, make_folder):
    root = make_folder({"cat": ("cat", 6), "dog": ("dog", 6)})
    calls = []
    report = evaluate(cifar_model, root, batch_size=4, limit=5, labels=list(CLASSES),
                      progress=lambda done, total: calls.append((done, total)))
    assert report.count == 5
    assert calls == [(4, 5), (5, 5)]
    picked = [path.name for path, _ in list_images(root, limit=5)]
    assert picked == [path.name for path, _ in list_images(root, limit=5)]
    assert len(set(index for _, index in list_images(root, limit=5))) == 2  # both classes kept
    assert report.summary().count("\n") == 0


def test_import_stays_light_and_evaluate_is_exported():
    import subprocess

    code = ("import sys, lsnet_deploy; assert 'torch' not in sys.modules; "
            "assert 'evaluate' in lsnet_deploy.__all__; f = lsnet_deploy.evaluate; "
            "import lsnet_deploy.accuracy as m; assert callable(lsnet_deploy.evaluate) and f is m.evaluate")
    subprocess.run([sys.executable, "-c", code], check=True)
