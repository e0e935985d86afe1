"""ResNet backbones (ResNet-18 / ResNet-50 and any stage layout) shipped in
the project, so the examples and tests need no torchvision.

From `"Deep Residual Learning for Image Recognition"
<https://arxiv.org/abs/1512.03385>`_ (CVPR 2016).  The module layout and the
``state_dict`` keys follow torchvision's ``torchvision.models.resnet``
(``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer2.0.downsample.0``, ``fc``,
...), with the "v1.5" :class:`Bottleneck` (the stride on the 3x3
convolution), so a torchvision checkpoint loads with
``load_state_dict(state, strict=True)`` into a model built with
``width=64``, ``stem='imagenet'`` and four stages.

    model = resnet18(num_classes=10)                      # ImageNet layout
    model = ResNet(BasicBlock, [1, 1, 1], width=16,       # 8x8 digit mosaics
                   in_channels=1, stem='small')
    feats = model.forward_features(x)                     # [B, C, h, w]
"""
from typing import List, Optional, Sequence, Type, Union

import torch
from torch import Tensor, nn

from ...functional.checks import check_int, check_ints, is_symbolic

__all__ = ['BasicBlock', 'Bottleneck', 'ResNet', 'resnet18', 'resnet50']

STEMS = ('imagenet', 'small')


def _check_downsample(downsample) -> Optional[nn.Module]:
    if downsample is not None and not isinstance(downsample, nn.Module):
        raise TypeError(f"'downsample' must be None or an nn.Module, got "
                        f"{type(downsample).__name__}")
    return downsample


def _check_block(in_channels, planes, stride, downsample) -> List[int]:
    """The arguments every residual block takes, checked before any work;
    returns the three ints."""
    ints = [check_int(value, name, minimum=1) for value, name in (
        (in_channels, 'in_channels'), (planes, 'planes'), (stride, 'stride'))]
    _check_downsample(downsample)
    return ints


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1
             ) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride,
                     padding=1, bias=False)


def _conv1x1(in_channels: int, out_channels: int, stride: int = 1
             ) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride,
                     bias=False)


class BasicBlock(nn.Module):
    r"""The two-convolution residual block of ResNet-18/34.

    From `"Deep Residual Learning for Image Recognition"
    <https://arxiv.org/abs/1512.03385>`_ (Fig. 2); attributes and
    ``state_dict`` keys as torchvision's ``torchvision.models.resnet``
    ``BasicBlock``:

    .. math::
        y = \mathrm{relu}\big(\mathrm{bn_2}(\mathrm{conv_2}(
        \mathrm{relu}(\mathrm{bn_1}(\mathrm{conv_1}(x))))) +
        \mathrm{downsample}(x)\big)

    with ``conv1`` a 3x3 convolution of stride ``stride``, ``conv2`` a 3x3
    convolution of stride 1 (both without bias), and ``downsample`` the
    identity when :obj:`None`.

    Args:
        in_channels (int): input channels.
        planes (int): channels of the two convolutions; the block outputs
            ``planes * expansion = planes`` channels (``out_channels``).
        stride (int, optional): stride of ``conv1``. (default: :obj:`1`)
        downsample (nn.Module, optional): applied to the input for the
            residual sum when the shape changes (torchvision's
            ``Sequential(conv1x1(stride), BatchNorm2d)``).
            (default: :obj:`None`)

    Shapes:
        - **input:** :math:`(B, C_{in}, H, W)`
        - **output:** :math:`(B, planes, \lceil H / stride \rceil,
          \lceil W / stride \rceil)`

    Raises:
        TypeError: ``in_channels``, ``planes`` or ``stride`` not an int (a
            ``bool`` is not one); ``downsample`` not a module.
        ValueError: ``in_channels``, ``planes`` or ``stride`` below 1.
    """
    expansion: int = 1

    def __init__(self, in_channels: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Module] = None):
        in_channels, planes, stride = _check_block(in_channels, planes,
                                                   stride, downsample)
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = planes * self.expansion
        self.conv1 = _conv3x3(in_channels, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        """
        Args:
            x (Tensor): :math:`(B, C_{in}, H, W)`.

        Returns:
            :math:`(B, C_{out}, H', W')`.
        """
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    r"""The three-convolution residual block of ResNet-50/101/152, in
    torchvision's "v1.5" layout (the stride on the 3x3 convolution).

    From `"Deep Residual Learning for Image Recognition"
    <https://arxiv.org/abs/1512.03385>`_ (Fig. 5, right); attributes and
    ``state_dict`` keys as torchvision's ``torchvision.models.resnet``
    ``Bottleneck``: ``conv1`` 1x1 to ``planes`` / ``bn1``, ``conv2`` 3x3 of
    stride ``stride`` / ``bn2``, ``conv3`` 1x1 to ``planes * 4`` / ``bn3``,
    ReLU after ``bn1``, ``bn2`` and after the residual sum with
    ``downsample(x)`` (the identity when :obj:`None`).

    Args:
        in_channels (int): input channels.
        planes (int): channels of the inner convolutions; the block outputs
            ``planes * expansion = 4 * planes`` channels (``out_channels``).
        stride (int, optional): stride of ``conv2``. (default: :obj:`1`)
        downsample (nn.Module, optional): applied to the input for the
            residual sum when the shape changes (torchvision's
            ``Sequential(conv1x1(stride), BatchNorm2d)``).
            (default: :obj:`None`)

    Shapes:
        - **input:** :math:`(B, C_{in}, H, W)`
        - **output:** :math:`(B, 4 \cdot planes, \lceil H / stride \rceil,
          \lceil W / stride \rceil)`

    Raises:
        TypeError: ``in_channels``, ``planes`` or ``stride`` not an int (a
            ``bool`` is not one); ``downsample`` not a module.
        ValueError: ``in_channels``, ``planes`` or ``stride`` below 1.
    """
    expansion: int = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Module] = None):
        in_channels, planes, stride = _check_block(in_channels, planes,
                                                   stride, downsample)
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = planes * self.expansion
        self.conv1 = _conv1x1(in_channels, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, self.out_channels)
        self.bn3 = nn.BatchNorm2d(self.out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        """
        Args:
            x (Tensor): :math:`(B, C_{in}, H, W)`.

        Returns:
            :math:`(B, C_{out}, H', W')`.
        """
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


Block = Union[Type[BasicBlock], Type[Bottleneck]]


class ResNet(nn.Module):
    r"""A ResNet: a stem, stages of residual blocks, global average pooling
    and a linear classifier.

    From `"Deep Residual Learning for Image Recognition"
    <https://arxiv.org/abs/1512.03385>`_ (CVPR 2016).  Module names and
    ``state_dict`` keys are those of torchvision's
    ``torchvision.models.resnet.ResNet`` (``conv1``, ``bn1``, ``relu``,
    ``maxpool``, ``layer1`` ... ``layer{len(layers)}``, ``avgpool``,
    ``fc``), so with ``width=64``, ``stem='imagenet'`` and four stages a
    torchvision checkpoint loads with ``load_state_dict(strict=True)``.

    Stage :math:`i` (1-based, attribute ``layer{i}``) is an
    ``nn.Sequential`` of ``layers[i-1]`` blocks of
    ``planes = width * 2**(i-1)``; its first block has stride 1 for stage 1
    and 2 for the others, and a ``downsample``
    ``Sequential(conv1x1(stride), BatchNorm2d)`` when its stride is not 1 or
    its input channels differ from ``planes * block.expansion``
    (torchvision's rule).

    Stems:
        - ``'imagenet'``: ``conv1`` 7x7 of stride 2 and padding 3 to
          ``width`` channels, ``bn1``, ``relu``, ``maxpool`` 3x3 of stride 2
          and padding 1 (total stride 4).
        - ``'small'``: ``conv1`` 3x3 of stride 1 and padding 1, ``bn1``,
          ``relu``, ``maxpool = nn.Identity()`` (total stride 1; for small
          images such as 8x8 digit mosaics).

    Initialisation (:meth:`reset_parameters`, torchvision's): convolutions
    ``kaiming_normal_(mode='fan_out', nonlinearity='relu')``, BatchNorm
    weight 1 and bias 0, ``fc`` PyTorch's default ``Linear`` init; with
    ``zero_init_residual`` the last BatchNorm weight of each block
    (``bn2`` of :class:`BasicBlock`, ``bn3`` of :class:`Bottleneck`) is
    zero, so each residual branch starts as the identity.

    Args:
        block (type): :class:`BasicBlock` or :class:`Bottleneck` (or a
            subclass).
        layers (Sequence[int]): the number of blocks of each stage, one or
            more positive ints (``[2, 2, 2, 2]`` for ResNet-18).
        num_classes (int, optional): outputs of ``fc``.
            (default: :obj:`1000`)
        in_channels (int, optional): channels of the input images.
            (default: :obj:`3`)
        width (int, optional): channels of the stem and ``planes`` of the
            first stage (doubled at each later stage). (default: :obj:`64`)
        stem (str, optional): ``'imagenet'`` or ``'small'`` (see above).
            (default: :obj:`'imagenet'`)
        zero_init_residual (bool, optional): zero the last BatchNorm weight
            of each block. (default: :obj:`False`)

    Attributes:
        out_channels (int): channels of the last stage (the features of
            :meth:`forward_features`, the input of ``fc``).
        stage_channels (List[int]): output channels of each stage.

    Shapes:
        - **input:** :math:`(B, C_{in}, H, W)`
        - **forward_features:** :math:`(B, C_{out}, h, w)`, with
          :math:`h \approx H / s` for the total stride
          :math:`s = 2^{S-1}` (stem ``'small'``) or :math:`4 \cdot 2^{S-1}`
          (stem ``'imagenet'``), :math:`S` stages
        - **output:** :math:`(B, num\_classes)` logits

    Raises:
        TypeError: ``block`` not a :class:`BasicBlock` or
            :class:`Bottleneck` class; ``layers`` not a sequence, or a count
            in it, ``num_classes``, ``in_channels`` or ``width`` not an int
            (a ``bool`` is not one).
        ValueError: ``layers`` empty or with a count below 1;
            ``num_classes``, ``in_channels`` or ``width`` below 1; ``stem``
            not one of ``'imagenet'``, ``'small'``; an input of the wrong
            shape (see :meth:`forward`).
    """

    def __init__(self, block: Block, layers: Sequence[int],
                 num_classes: int = 1000, in_channels: int = 3,
                 width: int = 64, stem: str = 'imagenet',
                 zero_init_residual: bool = False):
        if not (isinstance(block, type)
                and issubclass(block, (BasicBlock, Bottleneck))):
            raise TypeError(f"'block' must be BasicBlock or Bottleneck (or "
                            f"a subclass), got {block!r}")
        layers = check_ints(layers, 'layers', 1, 'blocks per stage')
        num_classes = check_int(num_classes, 'num_classes', minimum=1)
        in_channels = check_int(in_channels, 'in_channels', minimum=1)
        width = check_int(width, 'width', minimum=1)
        if not isinstance(stem, str) or stem not in STEMS:
            raise ValueError(f"'stem' must be one of {list(STEMS)}, got "
                             f"{stem!r}")
        super().__init__()
        self.block = block
        self.layers = layers
        self.in_channels = in_channels
        self.width = width
        self.stem = stem
        self.num_classes = num_classes
        self.zero_init_residual = bool(zero_init_residual)

        if stem == 'imagenet':
            self.conv1 = nn.Conv2d(in_channels, width, kernel_size=7,
                                   stride=2, padding=3, bias=False)
        else:
            self.conv1 = _conv3x3(in_channels, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool: nn.Module = (
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
            if stem == 'imagenet' else nn.Identity())

        channels = width
        self.stage_channels: List[int] = []
        for i, blocks in enumerate(layers, start=1):
            stage = self._make_stage(block, channels, width * 2 ** (i - 1),
                                     blocks, 1 if i == 1 else 2)
            self.add_module(f'layer{i}', stage)
            channels = stage[-1].out_channels
            self.stage_channels.append(channels)
        self.out_channels = channels
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        self.reset_parameters()

    @staticmethod
    def _make_stage(block: Block, in_channels: int, planes: int,
                    blocks: int, stride: int) -> nn.Sequential:
        out_channels = planes * block.expansion
        downsample = None
        if stride != 1 or in_channels != out_channels:
            downsample = nn.Sequential(
                _conv1x1(in_channels, out_channels, stride),
                nn.BatchNorm2d(out_channels))
        modules = [block(in_channels, planes, stride, downsample)]
        modules += [block(out_channels, planes) for _ in range(blocks - 1)]
        return nn.Sequential(*modules)

    @property
    def stages(self) -> List[nn.Sequential]:
        """The stages ``[layer1, layer2, ...]``."""
        return [getattr(self, f'layer{i}')
                for i in range(1, len(self.layers) + 1)]

    def reset_parameters(self):
        """Re-initialises all parameters and BatchNorm statistics as
        torchvision does (see the class docstring)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out',
                                        nonlinearity='relu')
            elif isinstance(m, nn.BatchNorm2d):
                m.reset_running_stats()
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        self.fc.reset_parameters()
        if self.zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.zeros_(m.bn3.weight)
                elif isinstance(m, BasicBlock):
                    nn.init.zeros_(m.bn2.weight)

    def _check_x(self, x: Tensor):
        if is_symbolic(x):  # torch.fx tracing: no values to check
            return
        if not isinstance(x, Tensor):
            raise TypeError(f"'x' must be a tensor of shape [B, "
                            f"{self.in_channels}, H, W], got "
                            f"{type(x).__name__}")
        if x.dim() != 4 or x.size(1) != self.in_channels:
            raise ValueError(f"{self.__class__.__name__} expects 'x' of "
                             f"shape [B, {self.in_channels}, H, W], got "
                             f"{tuple(x.shape)}")

    def forward_features(self, x: Tensor) -> Tensor:
        r"""The stem and the stages, without pooling and classifier.

        Args:
            x (Tensor): images :math:`(B, C_{in}, H, W)`.

        Returns:
            The last stage's feature map :math:`(B, C_{out}, h, w)`,
            ``C_out = out_channels``.

        Raises:
            ValueError: ``x`` not 4-D or without ``in_channels`` channels.
            TypeError: ``x`` not a tensor.
        """
        self._check_x(x)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for stage in self.stages:
            x = stage(x)
        return x

    def forward(self, x: Tensor) -> Tensor:
        r"""
        Args:
            x (Tensor): images :math:`(B, C_{in}, H, W)`.

        Returns:
            The logits :math:`(B, num\_classes)`.

        Raises:
            ValueError: ``x`` not 4-D or without ``in_channels`` channels.
            TypeError: ``x`` not a tensor.
        """
        x = self.avgpool(self.forward_features(x))
        return self.fc(torch.flatten(x, 1))


def resnet18(**kwargs) -> ResNet:
    """ResNet-18: :class:`ResNet` of :class:`BasicBlock` and
    ``layers=[2, 2, 2, 2]`` (11,689,512 parameters with the defaults, as
    torchvision's ``resnet18``).

    Args:
        **kwargs: the other arguments of :class:`ResNet` (``num_classes``,
            ``in_channels``, ``width``, ``stem``, ``zero_init_residual``).
    """
    return ResNet(BasicBlock, [2, 2, 2, 2], **kwargs)


def resnet50(**kwargs) -> ResNet:
    """ResNet-50: :class:`ResNet` of :class:`Bottleneck` and
    ``layers=[3, 4, 6, 3]`` (25,557,032 parameters with the defaults, as
    torchvision's ``resnet50``).

    Args:
        **kwargs: the other arguments of :class:`ResNet` (``num_classes``,
            ``in_channels``, ``width``, ``stem``, ``zero_init_residual``).
    """
    return ResNet(Bottleneck, [3, 4, 6, 3], **kwargs)
