"""One folder -> class mapping for every scorer of a dataset (issue 25): by label name when labels are
known, else sorted folders, and a folder set that does not fit the classes is refused with the mismatch
named unless ``--class-map`` maps it.

The mapping rules run on empty class folders (no model needed); the scoring tests run the trained
``cifar_small`` fixture on the committed CIFAR-10 test pictures (tests/data/cifar10/test).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lsnet_deploy.accuracy import (ClassMapping, agreement, evaluate, list_images, parse_class_map,
                                   resolve_class_mapping)
from lsnet_deploy.errors import UsageError

from ..conftest import CIFAR_TEST, error_line, invoke_export
from .conftest import CLASSES

PER_CLASS = 10


def folders(tmp_path: Path, *names: str) -> Path:
    """An ImageFolder of empty class folders (enough for the mapping rules)."""
    root = tmp_path / "data"
    for name in names:
        (root / name).mkdir(parents=True)
    return root


def pictures(tmp_path: Path, layout: dict[str, str], per_class: int = PER_CLASS) -> Path:
    """An ImageFolder of real CIFAR-10 test pictures: ``{folder name: CIFAR class}``."""
    root = tmp_path / "pictures"
    for folder, source in layout.items():
        (root / folder).mkdir(parents=True)
        for image in sorted((CIFAR_TEST / source).iterdir())[:per_class]:
            shutil.copy(image, root / folder / image.name)
    return root


def one_line(info) -> str:
    message = str(info.value)
    assert "\n" not in message
    return message


# ----------------------------------------------------------------------------------- the rules


def test_sorted_folders_when_they_are_exactly_the_classes(tmp_path):
    mapping = resolve_class_mapping(folders(tmp_path, *reversed(CLASSES)), num_classes=10)
    assert mapping.rule == "sorted folders"
    assert mapping.folders == {name: i for i, name in enumerate(CLASSES)}


def test_fewer_folders_than_classes_without_labels_is_refused(tmp_path):
    with pytest.raises(UsageError) as info:
        resolve_class_mapping(folders(tmp_path, "cat", "dog"), num_classes=10)
    message = one_line(info)
    assert "2 class folders" in message and "10 classes and no labels" in message
    assert "--labels" in message and "--class-map cat=INDEX,dog=INDEX" in message


def test_more_folders_than_classes_is_refused(tmp_path):
    with pytest.raises(UsageError, match="11 class folders but the model outputs 10 classes"):
        resolve_class_mapping(folders(tmp_path, *[f"c{i:02d}" for i in range(11)]), num_classes=10)


def test_a_subset_is_matched_by_label_name(tmp_path):
    mapping = resolve_class_mapping(folders(tmp_path, "dog", "cat"), labels=CLASSES, num_classes=10)
    assert mapping.rule == "label names" and mapping.folders == {"cat": 3, "dog": 5}
    record = json.loads(json.dumps(mapping.to_dict()))
    assert record["map"] == {"cat": 3, "dog": 5} and record["folders"] == 2
    assert record["summary"] == mapping.describe() == "by label names: cat->3, dog->5"


def test_misspelt_folders_are_refused_naming_each_and_the_fix(tmp_path):
    names = ["aeroplane", "car", *CLASSES[2:]]
    with pytest.raises(UsageError) as info:
        resolve_class_mapping(folders(tmp_path, *names), labels=CLASSES)
    message = one_line(info)
    assert "'aeroplane'" in message and "did you mean 'airplane'?" in message
    assert "--class-map aeroplane=airplane" in message
    assert "2 folders do not match: 'aeroplane', 'car'" in message


def test_a_case_difference_is_named_as_such(tmp_path):
    with pytest.raises(UsageError) as info:
        resolve_class_mapping(folders(tmp_path, "Cat", "dog"), labels=CLASSES)
    message = one_line(info)
    assert "'Cat'" in message and "only in case" in message and "--class-map Cat=cat" in message


def test_class_map_maps_misspelt_folders_inline_and_from_files(tmp_path):
    root = folders(tmp_path, "aeroplane", "car", *CLASSES[2:])
    expected = {name: i for i, name in enumerate(CLASSES)}
    expected = {"aeroplane": 0, "car": 1, **{k: v for k, v in expected.items() if v >= 2}}
    inline = resolve_class_mapping(root, labels=CLASSES, class_map="aeroplane=airplane,car=1")
    assert inline.folders == expected and inline.rule == "class map"
    assert inline.to_dict()["class_map"] == {"aeroplane": 0, "car": 1}
    lines = tmp_path / "map.txt"
    lines.write_text("# folder=class\naeroplane=airplane\ncar\tautomobile\n")
    as_json = tmp_path / "map.json"
    as_json.write_text(json.dumps({"aeroplane": "airplane", "car": 1}))
    for spec in (lines, as_json, str(lines)):
        assert resolve_class_mapping(root, labels=CLASSES, class_map=spec).folders == expected


def test_class_map_file_lines_keep_commas_in_labels(tmp_path):
    labels = ["tench, Tinca tinca", "goldfish, Carassius auratus"]  # ImageNet folders are synsets
    root = folders(tmp_path, "n01440764", "n01443537")
    spec = tmp_path / "synsets.txt"
    spec.write_text("n01440764=tench, Tinca tinca\nn01443537=1\n")
    assert resolve_class_mapping(root, labels=labels, class_map=spec).folders == {"n01440764": 0, "n01443537": 1}


def test_class_map_by_index_without_labels(tmp_path):
    assert parse_class_map(" cat = 3 , dog=5") == {"cat": 3, "dog": 5}
    mapping = resolve_class_mapping(folders(tmp_path, "cat", "dog"), num_classes=10, class_map="cat=3,dog=5")
    assert mapping.folders == {"cat": 3, "dog": 5}
    assert mapping.name_of(5) == "dog"


@pytest.mark.parametrize("spec, expected", [
    ("kitten=3", "'kitten', which is not a class folder"),
    ("cat=dog", "the model has no labels"),
    ("cat=10", "classes are 0-9"),
    ("cat=3", "'dog' of"),  # an unmapped folder without labels
    ("cat", "neither a file nor FOLDER=CLASS"),
    ("cat=3,cat=4", "maps folder 'cat' twice"),
])
def test_bad_class_maps_are_one_clear_error(tmp_path, spec, expected):
    with pytest.raises(UsageError) as info:
        resolve_class_mapping(folders(tmp_path, "cat", "dog"), num_classes=10, class_map=spec)
    assert expected in one_line(info)


def test_a_folder_named_after_a_repeated_label_is_ambiguous(tmp_path):
    labels = ["crane", "maillot", "crane"]  # ImageNet-1k's usual names repeat these two
    root = folders(tmp_path, "crane", "maillot")
    with pytest.raises(UsageError) as info:
        resolve_class_mapping(root, labels=labels)
    assert "names 2 classes (0, 2" in one_line(info) and "--class-map crane=0" in one_line(info)
    assert resolve_class_mapping(root, labels=labels, class_map="crane=2").folders == {"crane": 2, "maillot": 1}


def test_list_images_follows_the_mapping(tmp_path):
    root = pictures(tmp_path, {"dog": "dog", "cat": "cat"}, per_class=2)
    mapping = ClassMapping({"cat": 3, "dog": 5}, "class map")
    assert [index for _, index in list_images(root, classes=mapping)] == [3, 3, 5, 5]


# ----------------------------------------------------------------------------------- scoring


@pytest.fixture
def cat_dog(tmp_path) -> Path:
    return pictures(tmp_path, {"cat": "cat", "dog": "dog"})


def test_pytorch_and_artifact_score_a_labelled_subset_by_name(cifar_model, cat_dog, tmp_path):
    from lsnet_deploy.exporters import ExportOptions, export_model

    artifact = export_model(cifar_model, "onnx", tmp_path / "cifar.onnx",
                            ExportOptions(validate=False, labels=list(CLASSES))).path
    torch_report = evaluate(cifar_model, cat_dog, labels=list(CLASSES))
    onnx_report = evaluate(artifact, cat_dog, classes=torch_report.classes)  # labels embedded, mapping shared
    assert torch_report.classes.folders == onnx_report.classes.folders == {"cat": 3, "dog": 5}
    assert set(torch_report.per_class) == {"cat", "dog"}
    assert torch_report.top1 > 50  # a trained model on its own classes, far above chance
    assert onnx_report.top1 == pytest.approx(torch_report.top1, abs=100 / torch_report.count + 1e-9)
    assert agreement(onnx_report, torch_report) >= 95
    assert json.loads(json.dumps(onnx_report.to_dict()))["classes"]["map"] == {"cat": 3, "dog": 5}
    assert "classes by label names: cat->3, dog->5" in onnx_report.summary()


def test_a_subset_without_labels_is_refused_not_scored_as_classes_0_and_1(cifar_model, cat_dog):
    with pytest.raises(UsageError, match="2 class folders .* 10 classes and no labels"):
        evaluate(cifar_model, cat_dog)
    mapped = evaluate(cifar_model, cat_dog, class_map="cat=3,dog=5")
    assert mapped.top1 > 50


def test_agreement_needs_the_same_pictures(cifar_model, cat_dog):
    more = evaluate(cifar_model, cat_dog, class_map="cat=3,dog=5", limit=6)
    fewer = evaluate(cifar_model, cat_dog, class_map="cat=3,dog=5", limit=4)
    assert agreement(more, more) == 100.0
    with pytest.raises(UsageError, match="different pictures"):
        agreement(fewer, more)


# ----------------------------------------------------------------------------------- the export gate

def test_export_gate_scores_pytorch_and_artifact_by_name(tmp_path, fixture_checkpoint, cat_dog):
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(CLASSES) + "\n")
    result = invoke_export("-w", fixture_checkpoint, "--labels", labels, "--data", cat_dog, "--max-drop", "0",
                           "-o", tmp_path / "c.onnx", "--json")
    assert result.exit_code == 0, result.output
    accuracy = json.loads(result.stdout)["details"]["accuracy"]
    assert accuracy["classes"]["map"] == {"cat": 3, "dog": 5}
    assert accuracy["pytorch"]["top1"] > 50  # scored by name, not as classes 0 and 1 (0.00%)
    assert abs(accuracy["drop"]) <= 100 / accuracy["pytorch"]["count"] + 1e-9


def test_export_refuses_misspelt_or_unlabelled_subsets_before_any_work(tmp_path, fixture_checkpoint):
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(CLASSES) + "\n")
    misspelt = folders(tmp_path, "aeroplane", "car", *CLASSES[2:])
    result = invoke_export("-w", fixture_checkpoint, "--labels", labels, "--data", misspelt, "-o", tmp_path / "x.onnx")
    assert result.exit_code == 2 and "did you mean 'airplane'" in error_line(result)
    assert "loading" not in result.output
    subset = folders(tmp_path / "b", "cat", "dog")
    result = invoke_export("-w", fixture_checkpoint, "--data", subset, "-o", tmp_path / "x.onnx")
    assert result.exit_code == 2 and "no labels" in error_line(result)
    assert "exporting" not in result.output and not (tmp_path / "x.onnx").exists()
    result = invoke_export("-w", fixture_checkpoint, "--class-map", "cat=3", "-o", tmp_path / "x.onnx")
    assert result.exit_code == 2 and "add --data" in error_line(result)


# ----------------------------------------------------------------------------------- lsnet-bench --data

def bench(*args):
    from lsnet_deploy.cli.bench import app, normalize_args
    from typer.testing import CliRunner

    quick = ["--iters", "2", "--warmup", "1", "--warmup-time", "0", "--min-time", "0", "--threads", "2", "--no-save"]
    return CliRunner().invoke(app, normalize_args([str(a) for a in args] + quick))


def test_bench_scores_a_sizeless_checkpoint_and_an_artifact_through_one_mapping(tmp_path, cifar_model, cat_dog):
    import torch

    from lsnet_deploy.exporters import ExportOptions, export_model

    labelled = export_model(cifar_model, "onnx", tmp_path / "labelled.onnx",
                            ExportOptions(validate=False, labels=list(CLASSES))).path
    plain = tmp_path / "plain.pth"  # a bare state dict: its size (96) is known only from --imgsz
    torch.save(cifar_model.state_dict(), plain)
    result = bench(labelled, "-w", plain, "--imgsz", "96", "--data", cat_dog, "--json")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert len(records) == 2
    for record in records:
        accuracy = record["accuracy"]
        assert accuracy["classes"]["map"] == {"cat": 3, "dog": 5} and accuracy["classes"]["rule"] == "label names"
        assert accuracy["top1"] > 50 and accuracy["agreement"] >= 95 and accuracy["agreement_with"] == "plain.pth"
    assert "reference" in result.output  # the checkpoint is evaluated once, as the reference, and says so


def test_bench_refuses_an_unlabelled_subset_before_timing(tmp_path, cifar_model, cat_dog):
    from lsnet_deploy.exporters import ExportOptions, export_model

    plain = export_model(cifar_model, "onnx", tmp_path / "plain.onnx", ExportOptions(validate=False)).path
    result = bench(plain, "--data", cat_dog)
    assert result.exit_code == 2 and "no labels" in error_line(result)
    assert "timing" not in result.output
    result = bench(plain, "--data", cat_dog, "--class-map", "cat=3,dog=5", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["accuracy"]["classes"]["class_map"] == {"cat": 3, "dog": 5}
