"""Images as compact bytes through a small CNN, with an optional frozen backbone.

An image travels in ``Sample.payload`` as its raw grayscale pixels, row by row, in base64:
``{"image": "<base64 of H*W uint8>", "shape": [H, W]}`` (`image_payload` makes one). A 28x28
image is 784 bytes of pixels, 1,048 characters of base64, about 1.1 KB as a record, instead
of some 6 KB as a JSON list of floats.

What the record limit means for images: base64 grows the pixels by 4/3, so the default
``transport.max_record_bytes`` of 1 MiB (1,048,576 bytes) holds at most 786,432 grayscale
pixels in a record of its own. A served sample must also leave room for the rest of its label
request (16 KiB: serve dead-letters larger samples, see ``serve.max_record_bytes``), which
leaves 1,032,192 bytes: 774,144 pixels less a few for the id and the JSON around them, e.g. a
grayscale image of up to 879x879 (or a 512x512 one with 3 bytes a pixel would not fit). Larger
images need a larger limit on the broker, topics and ``transport.max_record_bytes``, or a
reference (a URL or object key) in the payload instead of the pixels.

The model (`ImageModel`, made by the factory `model`) reads images of one configured size,
scaled to [0, 1]: conv blocks (3x3 convolution, ReLU, 2x2 max pooling), dropout and a dense
layer make the ``hidden``-wide representation that `ImageModel.embed` gives (the
``backbone``); a dropout and a linear layer make the class logits (the ``head``). A sample whose
payload is not such an image, or not of that size, is rejected with a one-line reason.

With ``backbone: PATH`` (a ``state_dict`` of a pretrained backbone of the same shape, e.g.
saved by `save_backbone`) the backbone is loaded once per process, frozen, and only the head
is trained: checkpoints hold only the head's tensors, so a new version is small and hot-swaps
fast. `stream` generates labeled shapes to learn from.

>>> import torch
>>> net = model(CLASSES, torch.device("cpu"), size=16)
>>> samples, labels = stream(3, seed=1, size=16)
>>> encoded = net.encode(samples)
>>> tuple(net.logits(encoded.inputs).shape), tuple(net.embed(encoded.inputs).shape)
((3, 6), (3, 64))
"""

from __future__ import annotations

import base64
import binascii
import functools
import itertools
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from pydantic import JsonValue
from torch import nn

from streamal.messages import Sample
from streamal.model.config import FitConfig
from streamal.model.contract import Encoded, Labeled, StreamModel
from streamal.model.default import train_network
from streamal.model.factory import frozen

CLASSES = ["circle", "disk", "square", "triangle", "cross", "line"]


def image_payload(array: np.ndarray) -> dict[str, JsonValue]:
    """The payload of a grayscale uint8 image ``[H, W]``: its pixels in base64, and its shape.

    >>> image_payload(np.array([[0, 255], [7, 9]], dtype=np.uint8))
    {'image': 'AP8HCQ==', 'shape': [2, 2]}
    """
    if array.dtype != np.uint8 or array.ndim != 2:
        raise ValueError(f"expected a uint8 array [H, W] (got {array.dtype} {list(array.shape)})")
    return {"image": base64.b64encode(array.tobytes()).decode("ascii"), "shape": list(array.shape)}


def decode_image(payload: JsonValue, shape: tuple[int, int]) -> np.ndarray:
    """The uint8 pixels ``[H, W]`` of an `image_payload`; a ``ValueError`` with a one-line
    reason if ``payload`` is not one, or not of ``shape``.

    >>> decode_image({"image": "AP8HCQ==", "shape": [2, 2]}, (2, 2)).tolist()
    [[0, 255], [7, 9]]
    >>> decode_image({"image": "AP8HCQ==", "shape": [1, 4]}, (2, 2))
    Traceback (most recent call last):
    ...
    ValueError: payload: shape [1, 4], the model reads [2, 2]
    >>> decode_image({"image": "AP8H", "shape": [2, 2]}, (2, 2))
    Traceback (most recent call last):
    ...
    ValueError: payload: image has 3 bytes, shape [2, 2] needs 4
    """
    if not isinstance(payload, dict):
        raise ValueError(
            f'payload: expected {{"image": base64, "shape": [H, W]}} (got {type(payload).__name__})'
        )
    missing = [name for name in ("image", "shape") if name not in payload]
    if missing:
        raise ValueError(f"payload: missing {' and '.join(missing)}")
    image, size = payload["image"], payload["shape"]
    if size != list(shape):
        raise ValueError(f"payload: shape {_short(size)}, the model reads {list(shape)}")
    if not isinstance(image, str):
        raise ValueError(f"payload: image must be a base64 string (got {type(image).__name__})")
    try:
        pixels = base64.b64decode(image, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("payload: image is not valid base64") from None
    if len(pixels) != shape[0] * shape[1]:
        raise ValueError(
            f"payload: image has {len(pixels)} bytes, shape {list(shape)} needs "
            f"{shape[0] * shape[1]}"
        )
    return np.frombuffer(pixels, dtype=np.uint8).reshape(shape)


def _short(value: JsonValue) -> str:
    """``value`` for an error message, cut to 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class Backbone(nn.Sequential):
    """Image ``[B, 1, size, size]`` to representation ``[B, hidden]``: a conv block per entry
    of ``channels`` (3x3 convolution, ReLU, 2x2 max pooling), dropout, a dense layer, ReLU.

    >>> tuple(Backbone(16, (8, 16), 32)(torch.zeros(2, 1, 16, 16)).shape)
    (2, 32)
    """

    def __init__(
        self, size: int, channels: Sequence[int], hidden: int, dropout: float = 0.0
    ) -> None:
        blocks: list[nn.Module] = []
        for before, after in itertools.pairwise([1, *channels]):
            blocks += [nn.Conv2d(before, after, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        side = size >> len(channels)
        super().__init__(
            *blocks,
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(channels[-1] * side * side, hidden),
            nn.ReLU(),
        )


class ImageNetwork(nn.Module):
    """The whole trained network: `Backbone`, then the head (dropout, linear)."""

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))


@functools.cache
def _backbone_maker(size: int, channels: tuple[int, ...], hidden: int) -> Callable[[], nn.Module]:
    """One maker per backbone shape: `frozen` caches by maker, so equal shapes share one."""
    return functools.partial(Backbone, size, channels, hidden)


class ImageModel(StreamModel):
    """Grayscale images ``size`` x ``size`` (`image_payload` payloads) through a small CNN.

    ``network`` is the whole `ImageNetwork`, or with ``backbone`` (a path to a pretrained
    `Backbone`'s ``state_dict``) only the head: the backbone is then frozen and shared.
    """

    def __init__(
        self,
        classes: Sequence[str],
        device: torch.device,
        *,
        size: int,
        channels: Sequence[int],
        hidden: int,
        dropout: float,
        recipe: FitConfig,
        backbone: Path | str | None = None,
    ) -> None:
        if size >> len(channels) < 1:
            raise ValueError(f"size {size} is too small for {len(channels)} pooling blocks")
        self.classes = list(classes)
        self.device = device
        self.shape = (size, size)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, len(self.classes)))
        if backbone is None:
            self.backbone: nn.Module = Backbone(size, channels, hidden, dropout)
            self.network: nn.Module = ImageNetwork(self.backbone, self.head)
        else:
            make = _backbone_maker(size, tuple(channels), hidden)
            self.backbone = frozen(backbone, make, device)
            self.network = self.head
        self.network.to(device).eval()
        self.frozen = backbone is not None
        self._recipe = recipe

    def encode(self, samples: Sequence[Sample]) -> Encoded:
        images, kept, rejected = [], [], []
        for index, sample in enumerate(samples):
            try:
                images.append(decode_image(sample.payload, self.shape))
            except ValueError as error:
                rejected.append((index, str(error)))
            else:
                kept.append(index)
        batch = np.stack(images) if images else np.zeros((0, *self.shape), dtype=np.uint8)
        return Encoded(self.tensor(batch), kept, rejected)

    def tensor(self, images: np.ndarray) -> torch.Tensor:
        """uint8 images ``[B, H, W]`` as floats in [0, 1] ``[B, 1, H, W]`` on the device (moved
        as bytes, a quarter of the floats)."""
        tensor = torch.from_numpy(images).unsqueeze(1)
        if self.device.type == "cuda":
            tensor = tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor.float() / 255.0

    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(inputs))

    def embed(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.backbone(inputs)

    def stochastic_logits(self, inputs: torch.Tensor, passes: int) -> torch.Tensor:
        """All passes in one batched forward pass; a frozen backbone (no dropout) runs once."""
        if self.frozen:
            stacked = self.head(self.backbone(inputs).repeat(passes, 1))
        else:
            stacked = self.network(inputs.repeat(passes, 1, 1, 1))
        return stacked.reshape(passes, inputs.shape[0], -1)

    def probe(self) -> torch.Tensor:
        """A black, a white and a noisy image (a fixed seed)."""
        noise = np.random.default_rng(0).integers(0, 256, self.shape, dtype=np.uint8)
        black, white = np.zeros(self.shape, np.uint8), np.full(self.shape, 255, np.uint8)
        return self.tensor(np.stack([black, white, noise]))

    def fit(self, train: Labeled, validation: Labeled, start: StreamModel | None) -> None:
        """Adam on cross-entropy in mini-batches, keeping the epoch with the lowest validation
        loss; from ``start``'s weights when given. With a frozen backbone only the head trains,
        on the backbone's representation computed once."""
        train_inputs = self._network_inputs(train)
        validation_inputs = self._network_inputs(validation)
        if start is not None:
            self.load_state_dict(start.state_dict())
        train_network(self.network, train_inputs, validation_inputs, self._recipe)

    def _network_inputs(self, labeled: Labeled) -> tuple[torch.Tensor, torch.Tensor]:
        """What ``network`` reads for the samples (images, or the frozen backbone's
        representation), and their targets."""
        encoded = self.encode(labeled.samples)
        inputs = encoded.inputs
        if self.frozen:
            with torch.no_grad():  # not inference mode: the head's backward reads these
                inputs = self.backbone(inputs)
        targets = torch.as_tensor(labeled.targets[encoded.kept], device=self.device)
        return inputs, targets


def model(
    classes: Sequence[str],
    device: torch.device,
    *,
    size: int = 28,
    channels: Sequence[int] = (8, 16, 16),
    hidden: int = 64,
    dropout: float = 0.25,
    learning_rate: float = 1e-2,
    max_epochs: int = 40,
    patience: int = 5,
    batch_size: int = 64,
    min_steps: int = 10,
    backbone: str | None = None,
) -> ImageModel:
    """The factory (``model.factory: streamal.examples.images:model``); its keyword arguments
    are ``model.options``.

    Parameters
    ----------
    size : side of the square grayscale images the model reads (payload shape ``[size, size]``)
    channels : output channels of each conv block; each block halves the side
    hidden : width of the representation (`ImageModel.embed`)
    dropout : dropout before the dense layer and before the head (MC dropout samples them)
    learning_rate, max_epochs, patience, batch_size, min_steps : the training recipe, as for
        the default model's ``model.fit``
    backbone : path of a pretrained `Backbone` ``state_dict`` of this size, channels and hidden
        width (see `save_backbone`): frozen and shared, and only the head is trained
    """
    recipe = FitConfig(
        learning_rate=learning_rate,
        max_epochs=max_epochs,
        patience=patience,
        batch_size=batch_size,
        min_steps=min_steps,
    )
    return ImageModel(
        classes,
        device,
        size=size,
        channels=channels,
        hidden=hidden,
        dropout=dropout,
        recipe=recipe,
        backbone=backbone,
    )


def save_backbone(trained: ImageModel, path: Path | str) -> None:
    """Save ``trained``'s backbone as a ``state_dict`` file for the ``backbone`` option."""
    torch.save({k: v.cpu() for k, v in trained.backbone.state_dict().items()}, path)


def stream(
    n: int, seed: int = 0, size: int = 28, classes: Sequence[str] = CLASSES
) -> tuple[list[Sample], list[str]]:
    """``n`` generated images of shapes among ``classes`` (of `CLASSES`), with their labels.

    Each shape is drawn at a random position, scale, rotation, stroke width and contrast, then
    may be blurred, gets a few faint strokes of clutter and pixel noise, so that some images
    are hard to tell apart. Deterministic for a seed.

    >>> samples, labels = stream(2, seed=3, size=16)
    >>> [s.id for s in samples], samples[0].payload["shape"]
    (['img-3-0', 'img-3-1'], [16, 16])
    >>> stream(2, seed=3, size=16) == (samples, labels)
    True
    """
    unknown = sorted(set(classes) - set(CLASSES))
    if unknown:
        raise ValueError(f"unknown classes {unknown}: choose among {CLASSES}")
    rng = np.random.default_rng(seed)
    samples, labels = [], []
    for i in range(n):
        label = classes[int(rng.integers(len(classes)))]
        pixels = draw(label, size, rng)
        samples.append(Sample(id=f"img-{seed}-{i}", payload=image_payload(pixels)))
        labels.append(label)
    return samples, labels


# Each outline shape as segments in a unit frame (vertices on the unit circle).
def _polygon(corners: int, phase: float) -> list[tuple[np.ndarray, np.ndarray]]:
    angles = phase + 2 * np.pi * np.arange(corners + 1) / corners
    points = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return list(itertools.pairwise(points))


_UNIT = np.array([1.0, 0.0])
_SEGMENTS = {
    "square": _polygon(4, np.pi / 4),
    "triangle": _polygon(3, np.pi / 2),
    "cross": [(-_UNIT, _UNIT), (-_UNIT[::-1], _UNIT[::-1])],
    "line": [(-_UNIT, _UNIT)],
}


def draw(label: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """One uint8 image ``[size, size]`` of shape ``label``, randomly placed and distorted."""
    scale = size / 28
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    points = np.stack([xs.ravel(), ys.ravel()], axis=1)
    center = size / 2 - 0.5 + rng.uniform(-0.12, 0.12, 2) * size
    radius = rng.uniform(0.22, 0.36) * size
    angle = rng.uniform(0, 2 * np.pi)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    unit = (points - center) @ rotation / radius  # the shape's frame: its radius is 1
    if label in _SEGMENTS:
        distance = radius * _segments_distance(unit, _SEGMENTS[label])
    else:
        from_center = np.linalg.norm(unit, axis=1) - 1
        distance = radius * (np.maximum(from_center, 0) if label == "disk" else np.abs(from_center))
    image = rng.uniform(0.6, 1.0) * _stroke(distance, rng.uniform(1.0, 2.5) * scale)
    for _ in range(rng.integers(0, 4)):  # clutter: short faint strokes anywhere
        start = rng.uniform(0, size, 2)
        end = start + rng.uniform(2, 5) * scale * _direction(rng)
        clutter = _stroke(_segments_distance(points, [(start, end)]), scale)
        image = np.maximum(image, rng.uniform(0.3, 0.6) * clutter)
    image = image.reshape(size, size)
    if rng.random() < 0.5:
        image = _blur(image)
    image = image + rng.uniform(0.0, 0.15) + rng.normal(0, rng.uniform(0.05, 0.2), image.shape)
    return np.round(255 * np.clip(image, 0, 1)).astype(np.uint8)


def _direction(rng: np.random.Generator) -> np.ndarray:
    angle = rng.uniform(0, 2 * np.pi)
    return np.array([np.cos(angle), np.sin(angle)])


def _segments_distance(
    points: np.ndarray, segments: Sequence[tuple[np.ndarray, np.ndarray]]
) -> np.ndarray:
    """Distance of each point ``[N, 2]`` to the nearest of the segments ``(start, end)``.

    >>> segment = (np.zeros(2), np.array([2.0, 0.0]))
    >>> _segments_distance(np.array([[0.0, 1.0], [3.0, 0.0]]), [segment])
    array([1., 1.])
    """
    nearest = np.full(len(points), np.inf)
    for start, end in segments:
        along = end - start
        t = np.clip((points - start) @ along / (along @ along), 0, 1)
        gap = np.linalg.norm(points - (start + t[:, None] * along), axis=1)
        nearest = np.minimum(nearest, gap)
    return nearest


def _stroke(distance: np.ndarray, width: float) -> np.ndarray:
    """Ink of a stroke ``width`` pixels wide at ``distance`` from its middle, anti-aliased.

    >>> _stroke(np.array([0.0, 1.0, 1.5, 3.0]), 2.0).tolist()
    [1.0, 0.5, 0.0, 0.0]
    """
    return np.clip(width / 2 + 0.5 - distance, 0, 1)


def _blur(image: np.ndarray) -> np.ndarray:
    """``image`` smoothed by a [1, 2, 1] / 4 kernel along both axes (edges repeated).

    >>> _blur(np.array([[0.0, 4.0, 0.0]])).tolist()
    [[1.0, 2.0, 1.0]]
    """
    for axis in (0, 1):
        padded = np.pad(image, [(1, 1) if a == axis else (0, 0) for a in (0, 1)], mode="edge")
        first, middle, last = (
            np.take(padded, range(k, k + image.shape[axis]), axis=axis) for k in range(3)
        )
        image = (first + 2 * middle + last) / 4
    return image
