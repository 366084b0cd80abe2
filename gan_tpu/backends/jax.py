"""JAX trainer for AdversarialModel: stateless, one `jax.value_and_grad` per player, in order.

Keras' JAX trainer hands `train_step` the whole model state as values: (trainable,
non-trainable, optimizer, metrics variables), and carries only `model.optimizer`'s
variables. So on JAX `AdversarialModel.compile` sets `model.optimizer` to
:func:`players_optimizer`, a :class:`PlayersOptimizer` over every player's own optimizer:
its variables are the players' optimizer variables, which this step slices out and
updates with each player's `stateless_apply`.

Each player's loss runs inside a `keras.StatelessScope` holding the current values of
every model variable (the players before it already updated, as on TensorFlow), so the
model files' plain `self.net(x)` calls work unchanged; updates made there (seed generators
of dropout and noise, spectral-norm vectors and the normalized kernels spectral norm
writes) are carried forward, and a player's optimizer updates the values so assigned.

Distribution: under `keras.distribution.DataParallel` the jitted step sees the *global*
batch (sharded over devices by XLA/GSPMD), so a loss averaged over the batch is already
the global mean: no division by the replica count, unlike the TensorFlow trainer where
each replica sees its share and gradients are summed. Both give the gradient of the
global-batch mean.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import keras
import numpy as np

from gan_tpu import distributed
from gan_tpu.layers import shared_phase_kernels


class PlayersOptimizer(keras.optimizers.Optimizer):
    """`model.optimizer` on JAX: no state but its own step counter, and as `variables`
    every player's optimizer variables, so Keras' JAX trainer carries them in its state.
    (`keras.optimizers.MultiOptimizer` does this only from Keras 3.15; this works on all
    Keras 3 the support matrix holds.) It is never applied: :func:`train_step` applies each
    player's own optimizer statelessly to its slice of these variables."""

    def __init__(self, optimizers):
        super().__init__(learning_rate=0.0, name="players")
        self.optimizers = list(optimizers)
        self.build([])

    @property
    def variables(self):
        return super().variables + [v for opt in self.optimizers for v in opt.variables]

    def update_step(self, gradient, variable, learning_rate):
        raise NotImplementedError("PlayersOptimizer is never applied: each player's optimizer is")


def players_optimizer(model) -> PlayersOptimizer:
    """The :class:`PlayersOptimizer` of every player's (built) optimizer, in player order."""
    owner, optimizers = {}, []
    for player in model.players:
        for v in player.variables:
            if owner.setdefault(id(v), player.optimizer) is not player.optimizer:
                raise ValueError(f"variable {v.path} is trained by two players with different optimizers")
        if all(player.optimizer is not o for o in optimizers):
            optimizers.append(player.optimizer)
    return PlayersOptimizer(optimizers)


def _optimizer_slices(multi) -> dict[int, slice]:
    """id(player optimizer) -> its slice of `multi.variables` (the trainer's optimizer state)."""
    # multi.variables: the wrapper's own (step counter, learning rate), then each optimizer's.
    start = len(multi.variables) - sum(len(o.variables) for o in multi.optimizers)
    slices = {}
    for opt in multi.optimizers:
        slices[id(opt)] = slice(start, start + len(opt.variables))
        start += len(opt.variables)
    return slices


def _as_array(tree):
    return jax.tree_util.tree_map(jnp.asarray, tree)


def train_step(model, state, data):
    """One step of every player; `state` and the returned state are Keras' JAX trainer state."""
    trainable, non_trainable, opt_values, metric_values = state
    multi = model.optimizer
    if not hasattr(multi, "optimizers"):
        raise RuntimeError("compile the model on the JAX backend first (AdversarialModel.compile)")
    t_vars, nt_vars = model.trainable_variables, model.non_trainable_variables
    m_vars = model.metrics_variables
    values = {}
    for refs, vals in ((t_vars, trainable), (nt_vars, non_trainable), (m_vars, metric_values)):
        values.update((id(v), x) for v, x in zip(refs, vals))
    opt_values = list(opt_values)
    slices = _optimizer_slices(multi)
    model_vars = list(t_vars) + list(nt_vars)

    context, parts = {}, {}
    for player in model.players:
        p_vars = player.variables
        opt = player.optimizer
        where = slices[id(opt)]

        def loss_fn(p_values, context_in, o_values, player=player, p_vars=p_vars, opt=opt):
            current = dict(values)
            current.update((id(v), x) for v, x in zip(p_vars, p_values))
            # The optimizer's values too: a LossScaleOptimizer's scale_loss reads its scale,
            # which must be this step's (from the state), not the value traced in.
            mapping = [(v, current[id(v)]) for v in model_vars] + list(zip(opt.variables, o_values))
            with keras.StatelessScope(state_mapping=mapping) as scope, shared_phase_kernels():
                context_out = dict(context_in)
                loss, logged = player.loss(data, context_out, True)
                scaled = opt.scale_loss(loss)
            updated = []
            for v in model_vars:
                new = scope.get_current_value(v)
                updated.append(current[id(v)] if new is None else new)
            return scaled, _as_array((logged, context_out, updated))

        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        for _ in range(player.steps):
            p_values = [values[id(v)] for v in p_vars]
            (_, (logged, context_new, assigned)), grads = grad_fn(p_values, context, opt_values[where])
            # What the loss assigned is kept, trainable values too: spectral norm writes its
            # normalized kernel in training calls, and the optimizer updates that, as on TF
            # (else inference, which uses the kernel as stored, would see unnormalized ones).
            values.update((id(v), x) for v, x in zip(model_vars, assigned))
            new_p, new_opt = opt.stateless_apply(opt_values[where], grads, [values[id(v)] for v in p_vars])
            opt_values[where] = list(new_opt)
            values.update((id(v), x) for v, x in zip(p_vars, new_p))
        context = context_new
        parts.update(logged)

    with keras.StatelessScope(state_mapping=[(v, values[id(v)]) for v in model_vars]) as scope:
        model.after_step()  # the EMA of the generator's weights
    for v in nt_vars:
        new = scope.get_current_value(v)
        if new is not None:
            values[id(v)] = new

    own = multi.iterations  # the wrapper's own step counter, kept in step with the players
    for i, v in enumerate(multi.variables):
        if v is own:
            opt_values[i] = opt_values[i] + 1
    with keras.StatelessScope(state_mapping=[(v, values[id(v)]) for v in m_vars]) as scope:
        logs = model.track(parts)
    new_metrics = []
    for v in m_vars:
        new = scope.get_current_value(v)
        new_metrics.append(values[id(v)] if new is None else new)
    new_state = ([values[id(v)] for v in t_vars], [values[id(v)] for v in nt_vars], opt_values, new_metrics)
    return logs, new_state


def input_gradient(fn, x):
    """d(sum fn(x)) / dx, differentiable (for gradient penalties inside a player's loss)."""
    return jax.grad(lambda inputs: jnp.sum(jnp.asarray(fn(inputs), jnp.float32)))(x)


# ------------------------------------------------------------------ inference (generation)


def _backend_mesh(device_mesh) -> "jax.sharding.Mesh":
    """The `jax.sharding.Mesh` of a Keras DeviceMesh (Keras 3.8 has no `backend_mesh`)."""
    if hasattr(device_mesh, "backend_mesh"):
        return device_mesh.backend_mesh

    def device(name: str):  # Keras names devices "platform:id"
        platform, index = name.split(":")
        return next(d for d in jax.devices(platform) if d.id == int(index))

    devices = np.asarray(device_mesh.devices)
    found = np.array([device(str(n)) for n in devices.flatten()], dtype=object).reshape(devices.shape)
    return jax.sharding.Mesh(found, device_mesh.axis_names)


def compile_inference(fn, variables=(), distribution=None, gather=True):
    """`fn(x)` jitted with `variables`' current values passed as arguments (not baked in as
    constants), the batch sharded over the distribution's devices when one is given.

    Returns `run(x) -> outputs`: `x` a pytree of host arrays (NumPy, eager TF tensors), the
    outputs JAX arrays, computed asynchronously. Past one process the outputs are gathered
    to every process, unless `gather` is False (each process then reads its own shards).
    """
    variables = list(variables)

    @jax.jit
    def call(var_values, x):
        with keras.StatelessScope(state_mapping=list(zip(variables, var_values))):
            return fn(x)

    sharding = None
    if distribution is not None:
        from jax.sharding import NamedSharding, PartitionSpec

        mesh = _backend_mesh(distribution.device_mesh)
        sharding = NamedSharding(mesh, PartitionSpec(distribution.batch_dim_name))

    def put(leaf):
        leaf = np.asarray(leaf)
        return jnp.asarray(leaf) if sharding is None or leaf.ndim == 0 else jax.device_put(leaf, sharding)

    def run(x):
        out = call([v.value for v in variables], jax.tree_util.tree_map(put, x))
        return distributed.gathered(out) if gather else out  # past one process: the whole batch everywhere

    run.jitted = call  # its compilations: run.jitted._cache_size()
    return run
