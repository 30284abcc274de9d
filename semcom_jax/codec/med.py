"""VLM-CSC's memory-assisted continual learning (MED), a plain replay buffer, and the protocol
that measures forgetting.

The codec keeps training on a stream whose content changes in phases (here: the classes seen).
:class:`ShortLongMemory` is MED's memory: a short-term memory holds the most recent examples;
when it is full, a kernel-based selection picks what moves to the long-term memory, and the
short-term memory is emptied. The selection is kernel herding with an RBF kernel on the
encoder's normalised features, class by class in proportion to their counts (a representative
subset); ``novelty=True`` uses VLM-CSC's relevance score instead (eq. 15, the mean RBF similarity
to the long-term memory), moving the examples least like what is already kept. Every kept
example carries a weight, the number of stream examples it stands for; when the long-term memory
overflows, weighted herding shrinks it to equal class shares and hands each dropped example's
weight to its most similar survivor; replay gives each class its weight's share, so it follows
the whole stream seen so far, and draws uniformly among the class's kept examples
(``replay="weighted"``: in proportion to each example's own weight; ``evict="random"``: the
overflow drops random examples, equal class shares). :class:`ReservoirMemory` is the plain
replay buffer of the same total size (reservoir sampling: a uniform sample of everything seen,
replayed uniformly). Every training batch is the stream's batch plus as many examples replayed
from the memory (none for plain fine-tuning).

Memories hold indices into the training set, on the host: selection is a few small numpy kernel
matrices per transfer, and the training step stays one jitted function.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from semcom_jax.codec.data import ImageSet
from semcom_jax.codec.model import encode, init, text_and_scale
from semcom_jax.codec.train import TrainSettings, make_optimizer, make_step

REPLAY_RULES = ("class", "weighted")
EVICTION_RULES = ("herding", "random")


def _sq_dist(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.maximum((x**2).sum(1)[:, None] + (y**2).sum(1)[None, :] - 2 * x @ y.T, 0.0)


def rbf_kernel(x: np.ndarray, y: np.ndarray, bandwidth: float) -> np.ndarray:
    return np.exp(-_sq_dist(x, y) / (2.0 * bandwidth**2))


def median_bandwidth(x: np.ndarray) -> float:
    """The median heuristic: half the median squared distance between distinct rows."""
    off = _sq_dist(x, x)[~np.eye(len(x), dtype=bool)]
    return float(np.sqrt(np.median(off) / 2.0)) if off.size and np.median(off) > 0 else 1.0


def kernel_herding(features: np.ndarray, m: int, bandwidth: float,
                   weights: np.ndarray | None = None) -> np.ndarray:
    """Indices of ``m`` rows whose empirical kernel mean best matches that of all rows, each
    row counted ``weights`` times (default once): greedy kernel herding, each pick maximising
    the weighted mean similarity to the pool minus the mean similarity to the picks so far.
    Deterministic; no row is picked twice."""
    n = len(features)
    if m >= n:
        return np.arange(n)
    k = rbf_kernel(features, features, bandwidth)
    w = np.ones(n) if weights is None else np.asarray(weights, np.float64)
    target = k @ (w / w.sum())
    picked: list[int] = []
    acc = np.zeros(n)
    free = np.ones(n, bool)
    for t in range(m):
        gain = np.where(free, target - acc / (t + 1), -np.inf)
        i = int(np.argmax(gain))
        picked.append(i)
        free[i] = False
        acc += k[i]
    return np.asarray(picked, np.int64)


def _per_class(labels: np.ndarray, total: int, proportional: bool) -> dict:
    classes, counts = np.unique(labels, return_counts=True)
    if proportional:
        share = np.floor(total * counts / counts.sum()).astype(int)
    else:
        share = np.full(len(classes), total // len(classes))
    share = np.minimum(share, counts)
    spare = total - share.sum()
    for i in np.argsort(-(counts - share)):  # hand out what rounding left
        if spare <= 0:
            break
        extra = min(spare, counts[i] - share[i])
        share[i] += extra
        spare -= extra
    return dict(zip(classes.tolist(), share.tolist()))


class ShortLongMemory:
    """MED's short-term and long-term memories (capacities in examples).

    Each example is kept with the encoder's feature of it when it was observed (L2-normalised),
    which the kernel selection reads: re-encoding the memory at every transfer would cost more
    than the training step. Replay draws from the long-term memory (from the short-term memory
    while the long-term one is still empty): the short-term memory holds the stream's own
    recent examples, which the stream already trains on."""

    def __init__(self, short_term: int, long_term: int, transfer: int | None = None,
                 novelty: bool = False, replay: str = "class", evict: str = "herding",
                 seed: int = 0):
        if short_term < 1 or long_term < 1:
            raise ValueError(f"memory capacities must be >= 1, got short_term={short_term}, "
                             f"long_term={long_term}")
        if replay not in REPLAY_RULES:
            raise ValueError(f"replay must be one of {REPLAY_RULES}, got {replay!r}")
        if evict not in EVICTION_RULES:
            raise ValueError(f"evict must be one of {EVICTION_RULES}, got {evict!r}")
        self.replay = replay
        self.evict = evict
        self.short_capacity = short_term
        self.long_capacity = long_term
        self.transfer = short_term // 2 if transfer is None else transfer
        if not 1 <= self.transfer <= short_term:
            raise ValueError(f"transfer must lie in [1, {short_term}], got {transfer}")
        self.novelty = novelty
        self.short = _Store()
        self.long = _Store()
        self.rng = np.random.default_rng(seed)

    @property
    def size(self) -> int:
        return len(self.short) + len(self.long)

    def observe(self, index, labels, features) -> None:
        """Offers the stream's examples: training-set ``index`` (n,), their ``labels`` (n,) and
        L2-normalised encoder ``features`` (n, D)."""
        index, labels, features = np.asarray(index), np.asarray(labels), np.asarray(features)
        start = 0
        while start < len(index):
            room = self.short_capacity - len(self.short)
            stop = start + room
            self.short.add(index[start:stop], labels[start:stop], features[start:stop])
            start = stop
            if len(self.short) >= self.short_capacity:
                self.long.add(*self.short.take(
                    _select(self.short, self.transfer, True,
                            against=self.long if self.novelty else None)))
                if len(self.long) > self.long_capacity:
                    rows = (_select(self.long, self.long_capacity, False)
                            if self.evict == "herding"
                            else _random_shares(self.long.labels, self.long_capacity, self.rng))
                    self.long = _Store(*self.long.take(rows))
                self.short = _Store()

    def sample(self, n: int) -> np.ndarray:
        """``n`` examples to replay. Each class is replayed in proportion to its weight (the
        stream examples its kept ones stand for), so the replay follows the whole stream seen
        so far; within a class, ``replay="class"`` draws uniformly and ``"weighted"`` in
        proportion to each example's own weight."""
        store = self.long if len(self.long) else self.short
        if self.replay == "weighted":
            p = store.weights
        else:
            # Per-example weights pile up on a few survivors of each selection (a dropped
            # example's weight goes to its most similar survivor); replaying by them narrows
            # the replay to those few, which forgets more (docs/codec.md).
            _, cls = np.unique(store.labels, return_inverse=True)
            p = (np.bincount(cls, store.weights) / np.bincount(cls))[cls]
        return store.index[self.rng.choice(len(store), n, p=p / p.sum())]


class _Store:
    """Examples with their labels, features and weights (how many stream examples each one
    stands for; a selection hands a dropped example's weight to its most similar survivor)."""

    def __init__(self, index=None, labels=None, features=None, weights=None):
        self.index = np.zeros(0, np.int64) if index is None else np.asarray(index, np.int64)
        self.labels = np.zeros(0, np.int64) if labels is None else np.asarray(labels, np.int64)
        self.features = features
        self.weights = (np.ones(len(self.index)) if weights is None
                        else np.asarray(weights, np.float64))

    def __len__(self) -> int:
        return len(self.index)

    def add(self, index, labels, features, weights=None) -> None:
        self.index = np.concatenate([self.index, index])
        self.labels = np.concatenate([self.labels, labels])
        self.features = (np.asarray(features) if self.features is None
                         else np.concatenate([self.features, features]))
        self.weights = np.concatenate([self.weights, np.ones(len(index)) if weights is None
                                       else weights])

    def take(self, rows):
        """The rows kept, the weight of every other row of the same class moved to its most
        similar kept row."""
        w = np.zeros(len(rows))
        for c in np.unique(self.labels):
            kept = np.flatnonzero(self.labels[rows] == c)
            members = np.flatnonzero(self.labels == c)
            if not len(kept):
                continue
            f = self.features[members]
            sim = rbf_kernel(f, self.features[rows[kept]], median_bandwidth(f))
            np.add.at(w, kept[np.argmax(sim, 1)], self.weights[members])
        return self.index[rows], self.labels[rows], self.features[rows], w


def _random_shares(labels: np.ndarray, total: int, rng) -> np.ndarray:
    """``total`` rows drawn at random, every class an equal share (as :func:`_per_class`)."""
    keep = [rng.permutation(np.flatnonzero(labels == c))[:n]
            for c, n in _per_class(labels, total, False).items()]
    return np.sort(np.concatenate(keep))


def _select(store: _Store, total: int, proportional: bool,
            against: "_Store | None" = None) -> np.ndarray:
    """``total`` rows of ``store``, class by class (in proportion to the class counts, or equal
    shares). With ``against`` (the long-term memory) holding the class: the rows least similar
    on average to it (VLM-CSC's relevance score, eq. 15: the novel examples); otherwise kernel
    herding (a representative subset)."""
    if len(store) <= total:
        return np.arange(len(store))
    keep = []
    for c, n in _per_class(store.labels, total, proportional).items():
        if n == 0:
            continue
        members = np.flatnonzero(store.labels == c)
        f = store.features[members]
        h = median_bandwidth(f)
        ref = (None if against is None or not len(against)
               else against.features[against.labels == c])
        if ref is not None and len(ref):
            relevance = rbf_kernel(f, ref, h).mean(1)
            keep.append(members[np.argsort(relevance, kind="stable")[:n]])
        else:
            keep.append(members[kernel_herding(f, n, h, store.weights[members])])
    return np.sort(np.concatenate(keep))


class ReservoirMemory:
    """A plain replay buffer: a uniform sample (reservoir sampling) of all examples seen,
    replayed uniformly."""

    def __init__(self, capacity: int, seed: int = 0):
        if capacity < 1:
            raise ValueError(f"memory capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.seen = 0
        self.buffer = np.zeros(0, np.int64)
        self.rng = np.random.default_rng(seed)

    @property
    def size(self) -> int:
        return len(self.buffer)

    def observe(self, index, labels=None, features=None) -> None:
        for i in np.asarray(index):
            self.seen += 1
            if len(self.buffer) < self.capacity:
                self.buffer = np.append(self.buffer, i)
            else:
                j = self.rng.integers(0, self.seen)
                if j < self.capacity:
                    self.buffer[j] = i

    def sample(self, n: int) -> np.ndarray:
        return self.buffer[self.rng.integers(0, len(self.buffer), n)]


@dataclasses.dataclass(frozen=True)
class PhaseResult:
    phase: int
    accuracy: list  # accuracy on each phase's test images after this phase (clean features)
    memory_size: int


def phase_accuracy(model, params, test: ImageSet, phases) -> list:
    """Zero-shot accuracy (all classes' prompts) on the test images of each phase's classes."""
    prompts, scale = text_and_scale(model, params)
    out = []
    for classes in phases:
        part = test.classes(classes)
        f = encode(model, params, jnp.asarray(part.images))
        sim = (f / jnp.linalg.norm(f, axis=-1, keepdims=True)) @ (
            prompts / jnp.linalg.norm(prompts, axis=-1, keepdims=True)).T
        out.append(float(jnp.mean(jnp.argmax(sim, -1) == jnp.asarray(part.labels))))
    return out


@functools.lru_cache(maxsize=4)
def _compiled_step(model, settings: TrainSettings, steps: int):
    """Optimiser and jitted training step, once per (model, settings, schedule length): the
    methods compared on one stream share them."""
    tx = make_optimizer(settings, steps)
    return tx, jax.jit(make_step(model, settings, tx))


def asymmetric_allowed(labels: np.ndarray, num_fresh: int, num_classes: int) -> np.ndarray:
    """(B, C) bool for a batch whose first ``num_fresh`` rows come from the stream and the rest
    from the memory: the stream's images are compared only with the prompts of the classes in
    the stream's part of the batch, the replayed ones with every prompt (ER-ACE's asymmetric
    cross-entropy, Caccia et al., ICLR 2022: new classes' images then do not push the old
    classes' prompts away, which is what a class-incremental stream otherwise does)."""
    present = np.zeros(num_classes, bool)
    present[labels[:num_fresh]] = True
    allowed = np.ones((len(labels), num_classes), bool)
    allowed[:num_fresh] = present
    return allowed


def continual_run(spec, train: ImageSet, test: ImageSet, phases, memory,
                  settings: TrainSettings, progress=None,
                  asymmetric: bool = False) -> list[PhaseResult]:
    """Trains one codec through the phases (each ``settings.epochs`` epochs over its classes'
    training images), replaying from ``memory`` (None: plain fine-tuning); returns the
    accuracy on every phase's test classes after each phase. ``asymmetric``: the stream's
    examples are scored against the prompts of the classes in the stream's batch only
    (:func:`asymmetric_allowed`)."""
    phases = [list(p) for p in phases]
    if not phases or any(not p for p in phases):
        raise ValueError("phases must be a non-empty list of non-empty class lists")
    if settings.nam_weight > 0:
        raise ValueError("continual learning trains the encoder alone: nam_weight must be 0 "
                         f"(got {settings.nam_weight})")
    h, w = train.images.shape[1:]
    key = jax.random.PRNGKey(settings.seed)
    k_init, key = jax.random.split(key)
    model, params = init(spec, train.num_classes, h, w, k_init)
    b = settings.batch_size
    steps_per_phase = [settings.epochs * (int(np.isin(train.labels, p).sum()) // b)
                       for p in phases]
    tx, step = _compiled_step(model, settings, sum(steps_per_phase))
    opt_state = tx.init(params)
    images = jnp.asarray(train.images)
    labels = train.labels
    rng = np.random.default_rng(settings.seed)

    results = []
    t = 0
    for ph, classes in enumerate(phases):
        pool = np.flatnonzero(np.isin(labels, classes))
        for _ in range(settings.epochs):
            order = rng.permutation(pool)
            for s in range(len(pool) // b):
                fresh = order[s * b:(s + 1) * b]
                batch = fresh
                if memory is not None and memory.size:
                    batch = np.concatenate([fresh, memory.sample(b)])
                # the step returns the batch's features (before its update): the memory reads
                # them instead of a second forward pass
                allowed = (jnp.asarray(asymmetric_allowed(labels[batch], b, train.num_classes))
                           if asymmetric else None)
                params, opt_state, _, f = step(params, opt_state, jax.random.fold_in(key, t),
                                               images[batch], jnp.asarray(labels[batch]),
                                               allowed)
                if memory is not None:
                    f = np.asarray(f[:b])
                    memory.observe(fresh, labels[fresh],
                                   f / np.linalg.norm(f, axis=-1, keepdims=True))
                t += 1
            if progress is not None:
                progress.update(1)
        results.append(PhaseResult(ph, phase_accuracy(model, params, test, phases),
                                   0 if memory is None else memory.size))
    return results
