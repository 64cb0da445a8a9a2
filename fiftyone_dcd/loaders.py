"""
PyTorch data loading from FiftyOne views, through ``to_torch``.
"""

import logging

import numpy as np
import torch
from PIL import Image
from torch.utils.data import ConcatDataset, DataLoader

import fiftyone.utils.torch as fout

from fiftyone_dcd.naming import is_assigned_label_field

logger = logging.getLogger(__name__)

#: attributes of a ``Classification`` that make it a weighted target: the
#: label's loss weight, and a second label with its own weight (written by
#: the selection for images its label filter doubts)
WEIGHT_ATTR = "dcd_weight"
SECOND_LABEL_ATTR = "dcd_second_label"
SECOND_WEIGHT_ATTR = "dcd_second_weight"


class ImageGetItem(fout.GetItem):
    """Loads a sample's image as a normalized tensor, with its label index
    and id.

    Args:
        preprocess: a dict with ``in_chans``, ``input_size``, ``mean`` and
            ``std`` (see :func:`fiftyone_dcd.models.get_preprocess`)
        label_field (None): a ``Classification`` field whose label to load
        classes (None): the class list that maps labels to indices;
            required with ``label_field``
        augment (False): whether to flip images left-right at random
        soft (False): whether labels are ``(num_classes,)`` float targets
            carrying the label's weight and a second weighted label (see
            :data:`WEIGHT_ATTR`), for a loader that mixes weighted and
            plain parts; a missing weight is 1, and weights are read only
            from a run's assigned-label field
    """

    def __init__(
        self,
        preprocess,
        label_field=None,
        classes=None,
        augment=False,
        soft=False,
    ):
        self.label_field = label_field
        self.preprocess = dict(preprocess)
        self.class_to_idx = (
            {c: i for i, c in enumerate(classes)} if classes else None
        )
        self.augment = augment
        self.soft = soft and label_field is not None
        # weights are read only from a run's assigned labels, never from
        # attributes of these names on a user's own labels
        self.read_weights = self.soft and is_assigned_label_field(label_field)
        mapping = {"filepath": "filepath", "id": "id"}
        if label_field is not None:
            mapping["label"] = label_field + ".label"
        if self.read_weights:
            for attr in (WEIGHT_ATTR, SECOND_LABEL_ATTR, SECOND_WEIGHT_ATTR):
                mapping[attr] = "%s.%s" % (label_field, attr)

        super().__init__(field_mapping=mapping)

    @property
    def required_keys(self):
        keys = ["filepath", "id"]
        if self.label_field is not None:
            keys.append("label")
        if self.read_weights:
            keys += [WEIGHT_ATTR, SECOND_LABEL_ATTR, SECOND_WEIGHT_ATTR]

        return keys

    def __call__(self, d):
        item = {
            "inputs": load_image(
                d["filepath"],
                self.preprocess,
                flip=self.augment and torch.rand(1).item() < 0.5,
            ),
            "ids": d["id"],
        }
        if self.soft:
            item["labels"] = self._soft_target(d)
        elif self.label_field is not None:
            item["labels"] = self.class_to_idx[d["label"]]

        return item

    def _soft_target(self, d):
        # weight x one-hot: cross-entropy with these probability targets
        # is the weighted loss of each label
        target = torch.zeros(len(self.class_to_idx))
        w = d.get(WEIGHT_ATTR)
        target[self.class_to_idx[d["label"]]] += 1.0 if w is None else w
        second = d.get(SECOND_LABEL_ATTR)
        if second is not None:
            target[self.class_to_idx[second]] += d[SECOND_WEIGHT_ATTR]

        return target


def load_image(filepath, preprocess, flip=False):
    """Reads an image file into a normalized ``(C, H, W)`` float tensor."""
    mode = "L" if preprocess["in_chans"] == 1 else "RGB"
    with Image.open(filepath) as img:
        if img.mode.startswith("I"):
            # 16-bit grayscale: PIL's convert() would clip it to 255
            img = _to_8bit(img)

        img = img.convert(mode)
        size = preprocess["input_size"]
        if img.size != (size, size):
            img = img.resize((size, size), Image.BILINEAR)

        x = np.asarray(img, dtype=np.float32) / 255.0

    if x.ndim == 2:
        x = x[None]
    else:
        x = x.transpose(2, 0, 1)

    if flip:
        x = x[:, :, ::-1]

    mean = np.asarray(preprocess["mean"], dtype=np.float32)[:, None, None]
    std = np.asarray(preprocess["std"], dtype=np.float32)[:, None, None]

    return torch.from_numpy(np.ascontiguousarray((x - mean) / std))


def _to_8bit(img):
    x = np.asarray(img, dtype=np.float64)
    top = 65535.0 if x.max() > 255 or img.mode.startswith("I;16") else 255.0

    return Image.fromarray(
        np.clip(np.rint(x * 255.0 / top), 0, 255).astype(np.uint8)
    )


def to_torch_dataset(
    samples,
    preprocess,
    label_field=None,
    classes=None,
    augment=False,
    soft=False,
):
    """Returns ``samples.to_torch(...)`` of :class:`ImageGetItem` items,
    with field values loaded up front so that workers never query the
    database.
    """
    get_item = ImageGetItem(
        preprocess,
        label_field=label_field,
        classes=classes,
        augment=augment,
        soft=soft,
    )

    return samples.to_torch(get_item, vectorize=True)


def has_weights(samples, label_field):
    """Whether ``label_field`` is a run's assigned-label field and any of
    its labels carries a weight (:data:`WEIGHT_ATTR`); attributes of that
    name on other fields, such as a user's own labels, are not read."""
    return bool(
        label_field is not None
        and is_assigned_label_field(label_field)
        and len(samples)
        and samples.count("%s.%s" % (label_field, WEIGHT_ATTR))
    )


def make_loader(
    parts,
    preprocess,
    classes=None,
    batch_size=256,
    num_workers=0,
    shuffle=False,
    augment=False,
    seed=0,
):
    """Builds a ``DataLoader`` over one or more ``(samples, label_field)``
    parts, concatenated in order.

    Args:
        parts: a list of ``(samples, label_field)`` pairs; ``label_field``
            may be None for unlabelled inference
        preprocess: the model's input spec
        classes (None): the class list, required for labelled parts
        batch_size (256): the batch size
        num_workers (0): the number of loader worker processes
        shuffle (False): whether to shuffle (seeded by ``seed``)
        augment (False): whether to flip images at random
        seed (0): the shuffling seed

    Returns:
        a ``torch.utils.data.DataLoader`` of dicts with ``inputs``, ``ids``
        and, for labelled parts, ``labels``: class indices, or float
        targets of every part when a part's labels carry weights (see
        :func:`has_weights`)
    """
    soft = any(has_weights(samples, field) for samples, field in parts)
    datasets = [
        to_torch_dataset(
            samples,
            preprocess,
            label_field=field,
            classes=classes,
            augment=augment,
            soft=soft,
        )
        for samples, field in parts
        if len(samples) > 0
    ]
    dataset = datasets[0] if len(datasets) == 1 else ConcatDataset(datasets)
    generator = torch.Generator().manual_seed(seed)

    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        generator=generator,
        persistent_workers=False,
        drop_last=False,
    )
