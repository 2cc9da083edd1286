"""The course's training pipeline, as the notebooks run it, for bench/train_speed.py.

A torchvision-style data set that turns each stored uint8 image into a PIL image and
applies ``ToTensor`` per sample, a ``DataLoader`` with batch 20 and shuffling, the
assignment's transpose autoencoder with ``nn.BCELoss`` on its sigmoid output, and Adam at
1e-3. Two data sources: the same in-memory uint8 images as torchvision's ``CIFAR10``
holds them (the faster, conservative baseline), and ``ImageFolder`` + ``ToTensor`` on the
JPEG copy, one decode per sample (what the course code does with the files here).
"""

from __future__ import annotations

import time

import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from convae.data import ImageSet


class CourseCIFAR(Dataset):
    """torchvision.datasets.CIFAR10.__getitem__ over in-memory uint8 images."""

    def __init__(self, images: ImageSet) -> None:
        self.data = images.images.permute(0, 2, 3, 1).numpy()  # HWC, as CIFAR10.data
        self.targets = images.labels.tolist()
        self.transform = transforms.ToTensor()

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        return self.transform(Image.fromarray(self.data[i])), self.targets[i]


class CourseAutoencoder(nn.Module):
    """The CIFAR assignment's ConvAutoencoder, as written in the notebook (same parameter
    names as convae's, so its weights load into ``ConvAutoencoder`` for scoring)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        self.t_conv1 = nn.ConvTranspose2d(4, 16, 2, stride=2)
        self.t_conv2 = nn.ConvTranspose2d(16, 3, 2, stride=2)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        x = torch.relu(self.t_conv1(x))
        return torch.sigmoid(self.t_conv2(x))


class CourseRun:
    """The course training loop, steppable in chunks of images.

    Args:
        train: the training images (in memory) or a data set (e.g. an ImageFolder).
        seed: seeds the model's initial weights and the loader's shuffling.
    """

    def __init__(self, train: ImageSet | Dataset, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.model = CourseAutoencoder()
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.crit = nn.BCELoss()
        dataset = CourseCIFAR(train) if isinstance(train, ImageSet) else train
        gen = torch.Generator().manual_seed(seed)
        self.loader = DataLoader(dataset, batch_size=20, shuffle=True, generator=gen)
        self.it = iter(self.loader)

    def train_images(self, n: int) -> tuple[float, float]:
        """Train on about ``n`` images, continuing the current epoch (a new one starts when
        it ends).

        Returns:
            (wall-clock seconds, seconds of this process's CPU time).
        """
        t, c = time.perf_counter(), time.process_time()
        seen = 0
        while seen < n:
            try:
                x, _ = next(self.it)
            except StopIteration:
                self.it = iter(self.loader)
                continue
            loss = self.crit(self.model(x), x)
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            seen += len(x)
        return time.perf_counter() - t, time.process_time() - c
