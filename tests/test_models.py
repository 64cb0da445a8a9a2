"""Model building, checkpoints and penultimate features."""

import pytest
import torch
import torch.nn as nn

from fiftyone_dcd.models import (
    SmallCNN,
    build_model,
    find_classifier,
    get_preprocess,
    penultimate,
)


def test_small_cnn_penultimate_feeds_its_classifier():
    net = SmallCNN(num_classes=10).eval()
    x = torch.randn(3, 1, 28, 28)
    f = penultimate(net, x)
    assert f.shape == (3, net.num_features)
    torch.testing.assert_close(net.fc(f), net(x))


def test_timm_model_penultimate_is_pre_logits():
    net = build_model("resnet10t", num_classes=4, in_chans=1).eval()
    x = torch.randn(2, 1, 32, 32)
    f = penultimate(net, x)
    assert f.shape == (2, net.num_features)
    torch.testing.assert_close(net.get_classifier()(f), net(x))


def test_torchvision_model_penultimate_via_classifier_input():
    net = build_model("torchvision:resnet18", num_classes=3).eval()
    x = torch.randn(2, 3, 64, 64)
    f = penultimate(net, x)
    assert f.shape == (2, 512)
    torch.testing.assert_close(net.fc(f), net(x))
    assert get_preprocess(net)["input_size"] == 224


def test_plain_module_without_linear_is_explained():
    net = nn.Sequential(nn.Conv2d(1, 2, 3))
    with pytest.raises(ValueError, match="no nn.Linear classifier"):
        find_classifier(net)


def test_checkpoint_roundtrip_weights_only(tmp_path):
    net = SmallCNN(num_classes=10)
    path = tmp_path / "w.pt"
    torch.save(
        {"state_dict": {"net." + k: v for k, v in net.state_dict().items()}},
        path,
    )
    loaded = build_model("small_cnn", num_classes=10, checkpoint=str(path))
    for k, v in net.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v)


def test_checkpoint_of_other_architecture_is_explained(tmp_path):
    path = tmp_path / "other.pt"
    torch.save(nn.Linear(3, 2).state_dict(), path)
    with pytest.raises(ValueError, match="does not fit the SmallCNN model"):
        build_model("small_cnn", checkpoint=str(path))


def test_non_checkpoint_file_is_refused(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="Cannot read checkpoint"):
        build_model("small_cnn", checkpoint=str(path))


class Payload:
    pass


def test_pickled_objects_are_never_unpickled(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": Payload()}, path)
    with pytest.raises(ValueError, match="objects that need unpickling"):
        build_model("small_cnn", checkpoint=str(path))


def test_unknown_model_name_is_explained():
    with pytest.raises(ValueError, match="Unknown model 'resnet_nope'"):
        build_model("resnet_nope")
    with pytest.raises(ValueError, match="Unknown torchvision model"):
        build_model("torchvision:nope")
