"""The NB-201 supernet and its search steps in PyTorch, for the speed comparison only.

Written after the structure of the original DARTS code (``model_search.py``,
``architect.py``, ``train_search.py``) and of NB-201's GDAS / ENAS search models, sized
like :mod:`nas.benchmarks.nb201` so that ``benchmarks/weight_sharing.py`` can time the same
computation in both frameworks:

* ``MixedOp``: the weighted sum over every candidate op (DARTS), or, for GDAS, the sampled
  op alone plus the other ops' hard weights (which are 0 in value and carry the
  straight-through gradient); for ENAS one chosen op per edge.
* ops: none (``x * 0``), skip, ReLU-Conv1x1-BN, ReLU-Conv3x3-BN, avg-pool 3x3 (padding not
  counted). Batch norm has an affine transform and no running statistics
  (``track_running_stats=False``), like ``nb201.BatchStatNorm``.
* network: stem conv-BN, ``cells_per_stage`` cells, residual reduction (3x3 stride 2,
  3x3, shortcut avg-pool 2x2 + conv 1x1), ..., BN-ReLU, global average pool, linear. One
  ``alpha`` of shape (6 edges, 5 ops) is shared by every cell.
* :class:`Architect`: DARTS' architecture step, first order (gradient of the validation
  loss) or second order (the unrolled model ``w - eta * (momentum + dw + wd * w)`` and the
  finite-difference Hessian-vector product with ``R = 0.01 / ||v||``). Unlike the original,
  which builds a new network every step (``model.new()``), the unrolled model is allocated
  once and refilled: that is the same arithmetic without the allocation.
* :class:`Gdas`: hard Gumbel-softmax samples of ``log_softmax(alpha)`` with temperature,
  one for the architecture step (validation batch), one for the weight step.
* :class:`Enas`: an LSTM controller (one layer, 100 units, tanh constant 2.5, temperature
  5.0) sampling the 6 ops, REINFORCE with a moving-average baseline on the sampled child's
  validation accuracy; the child trains the shared weights on the training batch.

Optimizers are DARTS' (weights: SGD momentum 0.9, lr 0.025 cosine to 0.001, weight decay
3e-4, gradient norm clipped to 5; architecture: Adam 3e-4, betas (0.5, 0.999), weight
decay 1e-3) and ENAS' (SGD Nesterov 0.05 cosine to 0.0005, weight decay 1e-4; controller
Adam 3.5e-4), the defaults of :mod:`nas.weight_sharing`.

Needs ``torch`` (the ``bench-torch`` extra). Inputs are NCHW float32 tensors.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
OPS = ("none", "skip", "conv1x1", "conv3x3", "avgpool3x3")
NUM_NODES = 4


# ------------------------------------------------------------------------------ ops
class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out, affine=True, track_running_stats=False))


class Zero(nn.Module):
    def forward(self, x):
        return x.mul(0.0)


def make_op(name: str, channels: int) -> nn.Module:
    if name == "none":
        return Zero()
    if name == "skip":
        return nn.Identity()
    if name == "conv1x1":
        return ReLUConvBN(channels, channels, 1)
    if name == "conv3x3":
        return ReLUConvBN(channels, channels, 3)
    if name == "avgpool3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f"op must be one of {OPS}, got {name!r}")


class MixedOp(nn.Module):
    """Every candidate op of one edge."""

    def __init__(self, channels: int):
        super().__init__()
        self.ops = nn.ModuleList(make_op(name, channels) for name in OPS)

    def forward(self, x, weights):
        """DARTS: softmax-weighted sum over every op."""
        return sum(w * op(x) for w, op in zip(weights, self.ops, strict=True))

    def forward_gdas(self, x, hardwts, index: int):
        """GDAS: only the sampled op runs; the others add their (zero-valued) weight."""
        return sum(hardwts[j] * op(x) if j == index else hardwts[j]
                   for j, op in enumerate(self.ops))

    def forward_child(self, x, index: int):
        """ENAS: the chosen op alone."""
        return self.ops[index](x)


class SearchCell(nn.Module):
    """NB-201 cell: node t = sum over f < t of edge[t <- f](node f); returns node 3."""

    def __init__(self, channels: int):
        super().__init__()
        self.edges = nn.ModuleList(MixedOp(channels) for _ in EDGES)

    def _run(self, x, edge_fn):
        nodes = [x]
        for t in range(1, NUM_NODES):
            nodes.append(sum(edge_fn(e, nodes[f]) for e, (to, f) in enumerate(EDGES) if to == t))
        return nodes[-1]

    def forward(self, x, weights):
        return self._run(x, lambda e, h: self.edges[e](h, weights[e]))

    def forward_gdas(self, x, hardwts, index):
        return self._run(x, lambda e, h: self.edges[e].forward_gdas(h, hardwts[e], index[e]))

    def forward_child(self, x, ops):
        return self._run(x, lambda e, h: self.edges[e].forward_child(h, ops[e]))


class ResidualReduction(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride=2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3)
        self.shortcut = nn.Sequential(
            nn.AvgPool2d(2, stride=2, ceil_mode=True, count_include_pad=False),
            nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x):
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


class Network(nn.Module):
    """The NB-201 supernet; ``forward(x, mode=...)`` with mode ``darts`` (softmax of
    ``alpha``), ``gdas`` (``hardwts``, ``index``) or ``child`` (``ops``)."""

    def __init__(self, channels: int = 8, cells_per_stage: int = 1, num_stages: int = 3,
                 in_channels: int = 1, num_classes: int = 10):
        super().__init__()
        self.config = dict(channels=channels, cells_per_stage=cells_per_stage,
                           num_stages=num_stages, in_channels=in_channels,
                           num_classes=num_classes)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels, affine=True, track_running_stats=False))
        blocks, c = [], channels
        for stage in range(num_stages):
            if stage > 0:
                blocks.append(ResidualReduction(c, 2 * c))
                c *= 2
            blocks.extend(SearchCell(c) for _ in range(cells_per_stage))
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Sequential(nn.BatchNorm2d(c, affine=True, track_running_stats=False),
                                  nn.ReLU(inplace=False))
        self.classifier = nn.Linear(c, num_classes)
        self.alpha = nn.Parameter(1e-3 * torch.randn(len(EDGES), len(OPS)))

    def weights(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if n != "alpha"]

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alpha]

    def forward(self, x, mode: str = "darts", hardwts=None, index=None, ops=None):
        x = self.stem(x)
        if mode == "darts":
            w = F.softmax(self.alpha, dim=-1)
        for block in self.blocks:
            if not isinstance(block, SearchCell):
                x = block(x)
            elif mode == "darts":
                x = block(x, w)
            elif mode == "gdas":
                x = block.forward_gdas(x, hardwts, index)
            elif mode == "child":
                x = block.forward_child(x, ops)
            else:
                raise ValueError(f"mode must be darts, gdas or child, got {mode!r}")
        x = self.head(x).mean(dim=(2, 3))
        return self.classifier(x)

    def loss(self, x, y, **kw):
        return F.cross_entropy(self(x, **kw), y)


# ------------------------------------------------------------------- optimizers
class WeightTrainer:
    """SGD on the shared weights with a per-step cosine schedule and norm clipping."""

    def __init__(self, model: Network, num_steps: int, lr: float = 0.025,
                 lr_min: float = 0.001, momentum: float = 0.9, weight_decay: float = 3e-4,
                 nesterov: bool = False, grad_clip: float = 5.0):
        self.model = model
        self.params = model.weights()
        self.optimizer = torch.optim.SGD(self.params, lr, momentum=momentum,
                                         weight_decay=weight_decay, nesterov=nesterov)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.optimizer, max(num_steps, 1), eta_min=lr_min)
        self.grad_clip = grad_clip

    @property
    def lr(self) -> float:
        return self.scheduler.get_last_lr()[0]

    def step(self, x, y, **kw) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.model.loss(x, y, **kw)
        loss.backward()
        nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        return loss.detach()


def arch_adam(model: Network) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.arch_parameters(), lr=3e-4, betas=(0.5, 0.999),
                            weight_decay=1e-3)


class Architect:
    """DARTS' architecture step (``unrolled=False``: first order)."""

    def __init__(self, model: Network, trainer: WeightTrainer, momentum: float = 0.9,
                 weight_decay: float = 3e-4):
        self.model = model
        self.trainer = trainer
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.optimizer = arch_adam(model)
        self.unrolled_model = Network(**model.config)

    def step(self, x_train, y_train, x_valid, y_valid, unrolled: bool) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        if unrolled:
            self._backward_step_unrolled(x_train, y_train, x_valid, y_valid, self.trainer.lr)
        else:
            self.model.loss(x_valid, y_valid).backward()
        self.optimizer.step()

    def _compute_unrolled_model(self, x, y, eta):
        weights = self.model.weights()
        loss = self.model.loss(x, y)
        theta = torch.cat([w.detach().reshape(-1) for w in weights])
        state = self.trainer.optimizer.state
        if all("momentum_buffer" in state[w] for w in weights):
            moment = torch.cat([state[w]["momentum_buffer"].reshape(-1) for w in weights])
            moment = moment.mul(self.momentum)
        else:
            moment = torch.zeros_like(theta)
        grads = torch.autograd.grad(loss, weights)
        dtheta = torch.cat([g.reshape(-1) for g in grads]) + self.weight_decay * theta
        return self._construct_model_from_theta(theta - eta * (moment + dtheta))

    def _construct_model_from_theta(self, theta):
        new = self.unrolled_model
        with torch.no_grad():
            offset = 0
            for w in new.weights():
                n = w.numel()
                w.copy_(theta[offset:offset + n].view_as(w))
                offset += n
            new.alpha.copy_(self.model.alpha)
        new.zero_grad(set_to_none=True)
        return new

    def _backward_step_unrolled(self, x_train, y_train, x_valid, y_valid, eta):
        unrolled = self._compute_unrolled_model(x_train, y_train, eta)
        unrolled.loss(x_valid, y_valid).backward()
        dalpha = unrolled.alpha.grad
        vector = [w.grad for w in unrolled.weights()]
        implicit = self._hessian_vector_product(vector, x_train, y_train)
        self.model.alpha.grad = dalpha - eta * implicit

    def _hessian_vector_product(self, vector, x, y, r: float = 1e-2):
        weights = self.model.weights()
        eps = r / torch.cat([v.reshape(-1) for v in vector]).norm()
        with torch.no_grad():
            for w, v in zip(weights, vector, strict=True):
                w.add_(v, alpha=eps)
        (grad_p,) = torch.autograd.grad(self.model.loss(x, y), [self.model.alpha])
        with torch.no_grad():
            for w, v in zip(weights, vector, strict=True):
                w.sub_(v, alpha=2 * eps)
        (grad_n,) = torch.autograd.grad(self.model.loss(x, y), [self.model.alpha])
        with torch.no_grad():
            for w, v in zip(weights, vector, strict=True):
                w.add_(v, alpha=eps)
        return (grad_p - grad_n) / (2 * eps)


# --------------------------------------------------------------------- searchers
class Darts:
    """One DARTS search step: architecture (valid batch) then weights (train batch)."""

    def __init__(self, model: Network, num_steps: int, order: int = 1):
        self.model = model
        self.trainer = WeightTrainer(model, num_steps)
        self.architect = Architect(model, self.trainer)
        self.unrolled = order == 2

    def step(self, train, valid) -> torch.Tensor:
        self.architect.step(*train, *valid, unrolled=self.unrolled)
        return self.trainer.step(*train)


def gumbel_sample(alpha: torch.Tensor, tau: float):
    """Hard Gumbel-softmax of ``log_softmax(alpha)``: ``(hardwts, index)``."""
    while True:
        gumbels = -torch.empty_like(alpha).exponential_().log()
        probs = F.softmax((alpha.log_softmax(dim=1) + gumbels) / tau, dim=1)
        index = probs.max(-1, keepdim=True)[1]
        one_h = torch.zeros_like(probs).scatter_(-1, index, 1.0)
        hardwts = one_h - probs.detach() + probs
        if torch.isfinite(hardwts).all():
            return hardwts, index.view(-1).tolist()


class Gdas:
    """One GDAS search step: architecture on a valid batch, weights on a train batch, each
    with its own hard sample; temperature linear from 10 to 0.1 over ``num_steps``."""

    def __init__(self, model: Network, num_steps: int, tau_max: float = 10.0,
                 tau_min: float = 0.1):
        self.model = model
        self.trainer = WeightTrainer(model, num_steps)
        self.a_optimizer = arch_adam(model)
        self.num_steps, self.tau_max, self.tau_min = num_steps, tau_max, tau_min
        self.t = 0

    def tau(self) -> float:
        frac = min(self.t / max(self.num_steps - 1, 1), 1.0)
        return self.tau_max - (self.tau_max - self.tau_min) * frac

    def step(self, train, valid) -> torch.Tensor:
        tau = self.tau()
        self.a_optimizer.zero_grad(set_to_none=True)
        hardwts, index = gumbel_sample(self.model.alpha, tau)
        self.model.loss(*valid, mode="gdas", hardwts=hardwts, index=index).backward()
        self.a_optimizer.step()
        with torch.no_grad():
            hardwts, index = gumbel_sample(self.model.alpha, tau)
        loss = self.trainer.step(*train, mode="gdas", hardwts=hardwts, index=index)
        self.t += 1
        return loss


class Controller(nn.Module):
    """ENAS' LSTM controller over the 6 edges (one layer, ``hidden`` units)."""

    def __init__(self, hidden: int = 100, tanh_constant: float = 2.5, temperature: float = 5.0):
        super().__init__()
        self.lstm = nn.LSTMCell(hidden, hidden)
        self.g_emb = nn.Parameter(torch.empty(1, hidden))
        self.w_emb = nn.ModuleList(nn.Embedding(len(OPS), hidden) for _ in EDGES)
        self.w_soft = nn.ModuleList(nn.Linear(hidden, len(OPS)) for _ in EDGES)
        self.tanh_constant, self.temperature = tanh_constant, temperature
        for p in self.parameters():
            nn.init.uniform_(p, -0.1, 0.1)

    def forward(self):
        """``(log_prob, entropy, ops)`` of one sampled child."""
        x, hc = self.g_emb, None
        log_probs, entropies, ops = [], [], []
        for e in range(len(EDGES)):
            hc = self.lstm(x, hc)
            logits = self.w_soft[e](hc[0]) / self.temperature
            logits = self.tanh_constant * torch.tanh(logits)
            dist = torch.distributions.Categorical(logits=logits)
            op = dist.sample()
            log_probs.append(dist.log_prob(op))
            entropies.append(dist.entropy())
            ops.append(int(op.item()))
            x = self.w_emb[e](op)
        return torch.stack(log_probs).sum(), torch.stack(entropies).sum(), ops


class Enas:
    """One ENAS step: a sampled child trains the shared weights on the train batch; a new
    sample is scored on the valid batch and the controller takes a REINFORCE step."""

    def __init__(self, model: Network, num_steps: int, entropy_weight: float = 1e-4,
                 baseline_decay: float = 0.99):
        self.model = model
        self.trainer = WeightTrainer(model, num_steps, lr=0.05, lr_min=0.0005,
                                     weight_decay=1e-4, nesterov=True)
        self.controller = Controller()
        self.c_optimizer = torch.optim.Adam(self.controller.parameters(), lr=3.5e-4)
        self.entropy_weight, self.baseline_decay = entropy_weight, baseline_decay
        self.baseline = 0.0

    def step(self, train, valid) -> torch.Tensor:
        with torch.no_grad():
            _, _, ops = self.controller()
        loss = self.trainer.step(*train, mode="child", ops=ops)
        log_prob, entropy, ops = self.controller()
        with torch.no_grad():
            x, y = valid
            acc = (self.model(x, mode="child", ops=ops).argmax(-1) == y).float().mean()
        reward = float(acc) + self.entropy_weight * float(entropy.detach())
        self.baseline -= (1 - self.baseline_decay) * (self.baseline - reward)
        self.c_optimizer.zero_grad(set_to_none=True)
        (-log_prob * (reward - self.baseline)).backward()
        self.c_optimizer.step()
        return loss


SEARCHERS = {"darts1": lambda m, n: Darts(m, n, order=1),
             "darts2": lambda m, n: Darts(m, n, order=2),
             "gdas": Gdas, "enas": Enas}


def make(algorithm: str, num_steps: int, seed: int = 0, **net):
    """A searcher (``darts1``, ``darts2``, ``gdas``, ``enas``) over a fresh supernet."""
    if algorithm not in SEARCHERS:
        raise ValueError(f"algorithm must be one of {sorted(SEARCHERS)}, got {algorithm!r}")
    torch.manual_seed(seed)
    return SEARCHERS[algorithm](Network(**net), num_steps)


def check_finite(loss: torch.Tensor) -> None:
    if not math.isfinite(float(loss)):
        raise ValueError(f"non-finite torch loss {float(loss)}")
