"""The ``semcom-jax`` command: ``train``, ``eval RUN``, ``plot RUN``, ``baselines``, ``tables``,
``bench``."""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import os
import re
import sys
import time

# Flags on the command line that map onto TrainConfig keys.
_TRAIN_FLAGS = {
    "users": "num_users", "rbs": "num_rbs", "obs": "obs_mode", "reward": "reward",
    "score": "score", "table": "table", "algo": "algo", "objective": "objective",
    "num_envs": "num_envs", "total_steps": "total_env_steps", "seeds": "num_seeds",
    "seed": "seed", "lr": "lr", "chunk_updates": "chunk_updates",
    "eval_episodes": "eval_episodes", "devices": "devices", "network": "network",
    "train_users": "train_users", "train_rbs": "train_rbs",
}


# A budget that rounds down to fewer updates than this is refused (a whole number of updates is
# taken as meant): a size-free run asked for 200,000 steps would silently make one update.
MIN_UPDATES = 5
# Smoke-test mode: every command runs as written with tiny budgets (CI runs the README's
# commands this way). Not for results: what it trains is not a policy worth reporting.
QUICK_ENV = "SEMCOM_JAX_QUICK"


def quick() -> bool:
    return os.environ.get(QUICK_ENV, "") not in ("", "0")


class _HelpFormatter(argparse.HelpFormatter):
    """Fills ``{{ppo:KEY}}`` / ``{{sac:KEY}}`` in help texts with TrainConfig's defaults when help is
    shown, not when the parser is built: the config module imports the env, whose gymnax import
    starts JAX, which must wait for --compile-cache and --distributed."""

    def _get_help_string(self, action):
        text = super()._get_help_string(action)
        if "{" not in text:
            return text
        from semcom_jax.agents.config import TrainConfig

        def fill(m):
            v = TrainConfig.for_algo(m.group(1)).keys()[m.group(2)]
            return f"{v:,}" if isinstance(v, int) and abs(v) >= 10_000 else str(v)

        return re.sub(r"\{(ppo|sac|dqn):(\w+)\}", fill, text)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="semcom-jax", formatter_class=_HelpFormatter,
        description="semcom_jax: train and evaluate agents on the CLIP semantic-communication "
                    "downlink, compute baselines, build task tables, measure throughput.",
        epilog="Run 'semcom-jax VERB --help' for a verb's options. The main job: semcom-jax train")
    p.add_argument("--debug", action="store_true",
                   help="show the traceback of an error instead of its one-line message")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="VERB", title="verbs")

    t = sub.add_parser("train", help="train an agent (the main job); defaults from docs/model.md",
                       formatter_class=_HelpFormatter)
    t.add_argument("--config", help="JSON or YAML file of TrainConfig keys (flags override it)")
    t.add_argument("--out", help="run folder (default runs/<algo>-U<U>-Q<Q>-<obs>-<time>)")
    t.add_argument("--resume", metavar="RUN", help="continue the run in folder RUN")
    t.add_argument("--users", type=int, metavar="U",
                   help="users per episode, the size trained and evaluated at "
                        "(default {ppo:num_users})")
    t.add_argument("--rbs", type=int, metavar="Q",
                   help="resource blocks (default {ppo:num_rbs})")
    t.add_argument("--obs", choices=("paper", "full"),
                   help="observation: paper (the paper's state) or full (everything the exact "
                        "optimum uses) (default {ppo:obs_mode})")
    t.add_argument("--reward", choices=("terminal", "dense"),
                   help="eq. 11 paid at the last step (terminal, the paper's) or user by user "
                        "(dense); same episode return (default {ppo:reward})")
    t.add_argument("--score", choices=("table", "features"),
                   help="task score: the table's expected score at the SINR (table) or a real "
                        "feature sent through the feature channel and classified (features) "
                        "(default {ppo:score})")
    t.add_argument("--table", help="table file, or a shipped table by name: synthetic (the "
                   "default), fashion-mnist (measured from encoders trained here)")
    t.add_argument("--algo", choices=("ppo", "sac", "dqn"),
                   help="ppo (default), sac or dqn; each has its own defaults (TrainConfig.for_algo)")
    t.add_argument("--objective", choices=("clip", "kl"),
                   help="PPO's objective: clip, or kl (the paper's adaptive KL penalty) "
                        "(default {ppo:objective})")
    t.add_argument("--network", choices=("per_rb", "set", "mlp"),
                   help="policy network; 'set' is size-free (any U, Q) "
                        "(default {ppo:network})")
    t.add_argument("--train-users", type=int, nargs=2, metavar=("MIN", "MAX"),
                   help="train across sizes: U drawn per episode (network 'set')")
    t.add_argument("--train-rbs", type=int, nargs=2, metavar=("MIN", "MAX"),
                   help="train across sizes: Q drawn per episode (network 'set')")
    t.add_argument("--num-envs", type=int, metavar="N",
                   help="parallel environments (default {ppo:num_envs}; sac, dqn: "
                        "{sac:num_envs})")
    t.add_argument("--total-steps", type=int, metavar="STEPS",
                   help="training budget in env steps, rounded down to whole updates (refused "
                        f"when that leaves fewer than {MIN_UPDATES}) "
                        f"(default {{ppo:total_env_steps}})")
    t.add_argument("--seeds", type=int, help="number of seeds, trained together by vmap "
                                             "(default {ppo:num_seeds})")
    t.add_argument("--seed", type=int, help="first seed (default {ppo:seed})")
    t.add_argument("--lr", type=float, help="learning rate (default {ppo:lr}; sac, dqn: "
                                            "{sac:lr})")
    t.add_argument("--chunk-updates", type=int,
                   help="updates between evaluations/checkpoints (default 0 = auto, ~20 per run)")
    t.add_argument("--eval-every", type=int, metavar="STEPS",
                   help="evaluate (and checkpoint) every STEPS env steps, rounded to whole "
                        "updates (sets chunk_updates)")
    t.add_argument("--eval-episodes", type=int, metavar="N",
                   help="held-out episodes of each evaluation "
                        "(default {ppo:eval_episodes})")
    t.add_argument("--devices", type=int,
                   help="devices to split the env batch over (default 0 = all local devices)")
    t.add_argument("--distributed", action="store_true",
                   help="join JAX's multi-process runtime first (jax.distributed.initialize); "
                        "one process per host, see docs/training.md")
    t.add_argument("--coordinator", metavar="HOST:PORT",
                   help="with --distributed: process 0's address (not needed under SLURM, "
                        "Open MPI or on TPU)")
    t.add_argument("--num-processes", type=int, help="with --distributed: processes in all")
    t.add_argument("--process-id", type=int, help="with --distributed: this process, 0..N-1")
    t.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                   help="any other config key, e.g. --set ent_coef=0.003 "
                        "--set 'env_params={\"tx_power_w\": 0.5}'")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--compile-cache", metavar="DIR",
                   help="keep compiled programs in DIR (JAX's persistent compilation cache): a "
                        "later run of the same configuration starts without compiling")
    t.add_argument("--profile-compile", action="store_true",
                   help="print where compilation time goes (each program's tracing, lowering "
                        "and XLA seconds) and write it to compile_profile.csv in the run folder")

    e = sub.add_parser("eval", help="evaluate a run's last checkpoint against the baselines")
    e.add_argument("run", help="the run folder")
    e.add_argument("--users", type=int, help="evaluate at this U (size-free network 'set' only)")
    e.add_argument("--rbs", type=int, help="evaluate at this Q (size-free network 'set' only)")
    e.add_argument("--episodes", type=int, help="held-out episodes (default: the run's)")
    e.add_argument("--baselines", nargs="*", choices=("greedy", "fixed", "paper"),
                   default=["greedy", "fixed", "paper"], metavar="NAME",
                   help="baselines to compute besides random and the optimum (always computed: "
                        "they define the normalised score): greedy, fixed (each encoder with "
                        "its best RBs), paper (paper greedy and the paper ceiling; paper "
                        "observation only). Default: all; none: --baselines with no name")
    pl = sub.add_parser("plot", help="(re)draw a run's plots")
    pl.add_argument("run", help="the run folder")

    b = sub.add_parser("baselines", help="baselines and exact optimum on held-out episodes")
    b.add_argument("--users", type=int, default=5, help="users U (default %(default)s)")
    b.add_argument("--rbs", type=int, default=10, help="resource blocks Q (default %(default)s)")
    b.add_argument("--episodes", type=int, default=1024,
                   help="held-out episodes (default %(default)s)")
    b.add_argument("--seed", type=int, default=12345,
                   help="seed of the held-out episodes (default %(default)s)")
    b.add_argument("--table", help="table file or shipped table name (default: synthetic)")
    b.add_argument("--obs", choices=("paper", "full"), default="paper",
                   help="observation whose ceiling is reported (paper: the best policy that "
                        "observation allows, by Monte Carlo; full: the optimum)")
    b.add_argument("--ceiling-draws", type=int, default=256,
                   help="Monte-Carlo draws per episode for the paper ceiling "
                        "(default %(default)s)")

    sub.add_parser("bench", help="quick throughput and memory figures of this machine (~2 min)")
    la = sub.add_parser("launch", help="run a training command as N local processes of one "
                                       "multi-process JAX run (semcom-jax launch --processes 2 "
                                       "-- train ...)")
    la.add_argument("--processes", type=int, required=True,
                    help="number of local processes to start")
    la.add_argument("command", nargs=argparse.REMAINDER,
                    help="-- train [options]: the command every process runs")

    tb = sub.add_parser("tables", help="build task tables")
    tsub = tb.add_subparsers(dest="kind", required=True)
    syn = tsub.add_parser("synthetic", help="the calibrated synthetic table (the embedded default)")
    syn.add_argument("--out", required=True, help="table file to write (.npz)")
    syn.add_argument("--seed", type=int, default=0, help="seed (default %(default)s)")
    for kind, text in (("clip", "classification table from CLIP checkpoints (Flax)"),
                       ("regen", "regeneration table from CLIP + Flax Stable Diffusion")):
        c = tsub.add_parser(kind, help=text + " (needs the 'tables' extra)")
        c.add_argument("--images", required=True,
                       help="folder with one sub-folder of images per class, or an .npz with "
                            "images (N,H,W,3) uint8, labels (N,) and optional class_names")
        c.add_argument("--out", required=True, help="table file to write (.npz)")
        c.add_argument("--checkpoints", nargs="+", default=None,
                       help="CLIP hub names or local folders (default: OpenAI ViT-B/32, B/16, L/14)")
        c.add_argument("--names", nargs="+", help="encoder names, one per checkpoint")
        c.add_argument("--batch-size", type=int, default=32 if kind == "clip" else 8,
                       help="images per model call (default %(default)s)")
        c.add_argument("--resize", type=int, help="resize every image to N x N pixels")
        c.add_argument("--max-per-class", type=int, help="images per class (default: all)")
        c.add_argument("--seed", type=int, default=0, help="seed (default %(default)s)")
        c.add_argument("--no-progress", action="store_true", help="no progress bar")
        if kind == "clip":
            c.add_argument("--snr-min", type=float, default=-40.0,
                           help="lowest SNR of the grid, dB (default %(default)s)")
            c.add_argument("--snr-max", type=float, default=40.0,
                           help="highest SNR of the grid, dB (default %(default)s)")
            c.add_argument("--snr-step", type=float, default=1.0,
                           help="grid step, dB (default %(default)s)")
            c.add_argument("--draws", type=int, default=16, help="noise draws per image and SNR")
        else:
            c.add_argument("--sd", required=True,
                           help="Stable Diffusion folder (unet/, vae/, scheduler/; Flax weights)")
            c.add_argument("--judge", help="CLIP checkpoint that scores similarity (default: last)")
            c.add_argument("--snr-db", type=float, nargs="+", default=None,
                           help="SNR grid in dB (default: a coarse grid from -20 to 30 dB)")
            c.add_argument("--steps", type=int, default=25,
                           help="DDIM steps (default %(default)s)")
            c.add_argument("--guidance", type=float, default=3.0,
                           help="classifier-free guidance scale (default %(default)s)")
            c.add_argument("--draws", type=int, default=1,
                           help="noise draws per image and SNR (default %(default)s)")
            c.add_argument("--grid", help="PNG of source and regenerated images (Fig. 3)")
    te = tsub.add_parser("train-encoders",
                         help="train three small CLIP-style encoders on real images here and "
                              "measure a classification table from them (~4 min on 2 cores)")
    te.add_argument("--out", required=True, help="table file to write (.npz)")
    te.add_argument("--images", default="fashion-mnist", choices=("fashion-mnist", "digits"),
                    help="fashion-mnist: Debian's dataset-fashion-mnist; digits: scikit-learn's")
    te.add_argument("--plain", action="store_true",
                    help="plain contrastive training (default: channel-robust)")
    te.add_argument("--nam", action="store_true",
                    help="also train a noise attention module per encoder and store its figures")
    te.add_argument("--nam-in-training", action="store_true",
                    help="train each encoder with a noise attention module in the loop "
                         "(VLM-CSC's joint training; its cross-entropy on corrupted features is "
                         "one more term of the loss)")
    te.add_argument("--receiver", choices=("cosine", "nam"), default="cosine",
                    help="whose figures are the table's scores (nam: score='table' only)")
    te.add_argument("--epochs", type=int, default=6, help="training epochs (default %(default)s)")
    te.add_argument("--train-per-class", type=int, help="training images per class (default all)")
    te.add_argument("--features-per-class", type=int, default=100,
                    help="test features per class kept as the table's feature set")
    te.add_argument("--snr-min", type=float, default=-30.0,
                    help="lowest SNR of the grid, dB (default %(default)s)")
    te.add_argument("--snr-max", type=float, default=40.0,
                    help="highest SNR of the grid, dB (default %(default)s)")
    te.add_argument("--snr-step", type=float, default=1.0, help="grid step, dB (default %(default)s)")
    te.add_argument("--draws", type=int, default=4,
                    help="noise draws per image and SNR (default %(default)s)")
    te.add_argument("--seed", type=int, default=0, help="seed (default %(default)s)")
    te.add_argument("--no-progress", action="store_true", help="no progress bar")
    tm = tsub.add_parser("tiny-models", help="tiny random CLIP x3 and Stable Diffusion checkpoints "
                                             "(offline demo and tests of the model builders)")
    tm.add_argument("--out", required=True, help="folder to write the checkpoints to")
    tm.add_argument("--seed", type=int, default=0, help="seed (default %(default)s)")
    return p


def _train_config(args):
    from semcom_jax.agents.config import TrainConfig, parse_set_items, read_config_file

    data = {}
    if args.config:  # only the keys the file sets, so --algo still brings its own defaults
        data.update(read_config_file(args.config))
    for flag, key in _TRAIN_FLAGS.items():
        v = getattr(args, flag)
        if v is not None:
            data[key] = v
    given = parse_set_items(args.set)
    data.update(given)
    try:
        cfg = TrainConfig.from_dict(data)
    except ValueError as e:
        raise ValueError(_in_flag_terms(str(e), args)) from None
    foreign = sorted(set(given) - set(cfg.keys()) - {"algo"})
    if foreign:  # a config file of an earlier version may hold them; a --set means them
        raise ValueError(f"--set {', '.join(foreign)}: not a key of algorithm {cfg.algo!r}")
    rounded = cfg.num_updates * cfg.steps_per_update != cfg.run.total_env_steps
    if rounded and cfg.num_updates < MIN_UPDATES:  # an exact small budget is taken as meant
        raise ValueError(
            f"--total-steps {cfg.run.total_env_steps:,} is {cfg.num_updates} update(s) of "
            f"{cfg.steps_per_update:,} env steps ({cfg.run.num_envs} envs x {cfg.num_steps} steps); "
            f"give at least {MIN_UPDATES} updates: --total-steps "
            f"{MIN_UPDATES * cfg.steps_per_update:,} or more, or fewer --num-envs")
    if args.eval_every is not None:
        if args.chunk_updates is not None:
            raise ValueError("give --eval-every or --chunk-updates, not both")
        if args.eval_every < 1:
            raise ValueError(f"--eval-every must be >= 1 env step, got {args.eval_every}")
        chunk = max(1, round(args.eval_every / cfg.steps_per_update))
        if chunk * cfg.steps_per_update != args.eval_every:
            print(f"note: --eval-every {args.eval_every:,} rounded to {chunk} update(s) of "
                  f"{cfg.steps_per_update:,} env steps = every {chunk * cfg.steps_per_update:,}")
        cfg = cfg.replace(chunk_updates=chunk).validate()
    if quick():
        cfg = cfg.replace(total_env_steps=2 * cfg.steps_per_update, chunk_updates=1,
                          eval_episodes=min(cfg.run.eval_episodes, 4),
                          ceiling_draws=min(cfg.run.ceiling_draws, 4)).validate()
        print(f"{QUICK_ENV} is set: 2 updates and 4 held-out episodes, a smoke test")
    return cfg


def _in_flag_terms(message: str, args) -> str:
    """A config error in the words the user typed: ``config key 'num_users'`` becomes
    ``--users`` when the value came from that flag."""
    for flag, key in _TRAIN_FLAGS.items():
        if getattr(args, flag, None) is not None:
            message = message.replace(f"config key {key!r}", f"--{flag.replace('_', '-')}")
    return message


def _budget_note(cfg) -> str:
    """What a budget that is not a whole number of updates actually runs."""
    ran = cfg.num_updates * cfg.steps_per_update
    if ran == cfg.run.total_env_steps:
        return ""
    return (f"note: total_env_steps {cfg.run.total_env_steps:,} is not a whole number of updates "
            f"({cfg.run.num_envs} envs x {cfg.num_steps} steps = {cfg.steps_per_update:,} env steps "
            f"each): running {cfg.num_updates} updates = {ran:,} env steps")


def _quiet_checkpoint_reader() -> None:
    """One line per warning, and no echo of orbax's background reads: when a damaged checkpoint
    fails to restore, the reads still in flight finish after orbax closed their event loop and
    each prints a 'RuntimeError: Event loop is closed' traceback (about a hundred per failed
    restore) around the one-line outcome the user needs, and a read left unfinished reports
    its own failure when its coroutine is collected ('Exception ignored in: <coroutine object
    _read_array_index_and_device_put>')."""
    import threading
    import warnings

    def closed_loop(exc_type, exc) -> bool:
        return exc_type is RuntimeError and str(exc) == "Event loop is closed"

    def orbax_read(obj) -> bool:  # a coroutine of orbax's, collected after a failed restore
        code = getattr(obj, "cr_code", None)
        return code is not None and f"{os.sep}orbax{os.sep}" in code.co_filename

    def excepthook(exc_type, exc, tb, _orig=sys.excepthook):
        if not closed_loop(exc_type, exc):
            _orig(exc_type, exc, tb)

    def thread_hook(a, _orig=threading.excepthook):
        if not closed_loop(a.exc_type, a.exc_value):
            _orig(a)

    def unraisable_hook(u, _orig=sys.unraisablehook):
        if not (closed_loop(u.exc_type, u.exc_value) or orbax_read(u.object)):
            _orig(u)

    sys.excepthook, threading.excepthook, sys.unraisablehook = (excepthook, thread_hook,
                                                                 unraisable_hook)
    warnings.showwarning = lambda message, category, *_, **__: print(
        f"semcom-jax: warning: {message}", file=sys.stderr)


def console() -> int:
    """The ``semcom-jax`` executable: :func:`main` in a process of its own, whose warnings and
    stray background tracebacks it may quiet (``--debug`` keeps them)."""
    if "--debug" not in sys.argv[1:]:
        _quiet_checkpoint_reader()
    return main()


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except (ValueError, OSError) as e:  # user error or the machine's: one line, no traceback
        if args.debug:
            raise
        print(f"semcom-jax: error: {_one_line(e, args)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("semcom-jax: interrupted" + _resume_hint(args), file=sys.stderr)
        return 130


def _one_line(e: Exception, args) -> str:
    if isinstance(e, OSError) and e.errno == errno.ENOSPC:
        where = f" writing {e.filename!r}" if e.filename else ""
        return f"disk full{where}; finished chunks are kept" + _resume_hint(args)
    if isinstance(e, OSError) and not isinstance(e, ValueError):
        where = f" {e.filename!r}" if e.filename else ""
        return f"{e.strerror or type(e).__name__}{where}" + _resume_hint(args)
    return " ".join(str(e).split()) or type(e).__name__


def _resume_hint(args) -> str:
    run = getattr(args, "resume", None) or getattr(args, "out", None)
    if getattr(args, "cmd", None) == "train" and run:
        return f"; continue with: semcom-jax train --resume {run}"
    return ""


def _changes_on_resume(args) -> list[str]:
    """Flags given with ``--resume`` that would change the run (its config.json decides)."""
    given = [f"--{flag.replace('_', '-')}" for flag in _TRAIN_FLAGS
             if getattr(args, flag) is not None]
    given += ["--config"] * bool(args.config) + ["--set"] * bool(args.set)
    given += ["--out"] * bool(args.out) + ["--eval-every"] * (args.eval_every is not None)
    return given


def _train(args):
    """``(run_dir, summary)`` of ``semcom-jax train``: a new run, or a resumed one."""
    from semcom_jax.training import runs

    if args.resume:
        changed = _changes_on_resume(args)
        if changed:
            raise ValueError(
                f"--resume continues {args.resume!r} with its own config.json; "
                f"{', '.join(changed)} would change the run: start a new run instead")
        return args.resume, runs.train(None, args.resume, resume=True,
                                       progress=not args.no_progress)
    cfg = _train_config(args)
    run_dir = args.out or os.path.join(
        "runs", f"{cfg.algo}-U{cfg.env.num_users}-Q{cfg.env.num_rbs}-{cfg.env.obs_mode}-"
                f"{time.strftime('%Y%m%d-%H%M%S')}")
    if _budget_note(cfg):
        print(_budget_note(cfg))
    return run_dir, runs.train(cfg, run_dir, progress=not args.no_progress)


def _run(args) -> int:
    if getattr(args, "compile_cache", None) is not None:
        from semcom_jax.training import compile_cache

        compile_cache.enable(args.compile_cache)
    if args.cmd == "train":
        if args.distributed:
            import semcom_jax.cli.launch as launch

            launch.initialize(args.coordinator, args.num_processes, args.process_id)
        elif any(x is not None for x in (args.coordinator, args.num_processes, args.process_id)):
            raise ValueError("--coordinator, --num-processes and --process-id need --distributed")
        import contextlib

        from semcom_jax.training.compile_profile import CompileProfile

        prof = CompileProfile() if args.profile_compile else None
        with prof or contextlib.nullcontext():
            run_dir, summary = _train(args)
        if prof is not None:
            print("compilation, per program:\n" + prof.table())
            prof.write_csv(os.path.join(run_dir, "compile_profile.csv"))
        _print_summary(run_dir, summary)
        print(f"results: {os.path.abspath(run_dir)} (config.json, metrics.csv, metrics.jsonl, "
              "summary.json, baselines.json, checkpoints/"
              + (", compile_profile.csv" if prof is not None else "") + ")")
        print(f"plots:   {os.path.join(os.path.abspath(run_dir), 'plots')} (learning_curve.png, "
              "encoder_usage.png, violations.png)")
        return 0
    if args.cmd == "eval":
        from semcom_jax.baselines import report
        from semcom_jax.training import runs

        if quick():
            args.episodes = 1
            print(f"{QUICK_ENV} is set: 1 held-out episode, a smoke test")
        out = runs.evaluate_run(args.run, args.users, args.rbs, args.episodes,
                                baselines=args.baselines, progress=_eval_plan(args))
        print(f"run {args.run}, update {out['update']}, held-out episodes at "
              f"U={out['num_users']} Q={out['num_rbs']}:")
        print(report.format_report(out["report"], out["encoders"]))
        print(report.explain(out["report"], _obs_mode(args.run)))
        return 0
    if args.cmd == "plot":
        from semcom_jax.training.plots import plot_run

        for p in plot_run(args.run):
            print(p)
        return 0
    if args.cmd == "baselines":
        from semcom_jax.baselines.evaluate import Evaluator
        from semcom_jax.baselines import report
        from semcom_jax.env.environment import SemComEnv
        from semcom_jax.tables.format import load_table

        for flag in ("users", "rbs", "episodes"):
            if getattr(args, flag) < 1:
                raise ValueError(f"--{flag} must be >= 1, got {getattr(args, flag)}")
        if args.ceiling_draws < 2:
            raise ValueError(f"--ceiling-draws must be >= 2, got {args.ceiling_draws}")
        env = SemComEnv(args.users, args.rbs, obs_mode=args.obs,
                        table=load_table(args.table) if args.table else None)
        ev = Evaluator(env, env.default_params, args.episodes, args.seed,
                       ceiling_draws=args.ceiling_draws)
        print(f"U={args.users} Q={args.rbs}, {args.episodes} episodes, table: "
              f"{env.table.metadata['source']} ({env.table.metadata.get('dataset', '')}), "
              f"ceiling of the {args.obs} observation: {ev.ceiling}"
              + (f" (Monte-Carlo error of an expected term: {ev.ceiling_se:.4f})"
                 if ev.ceiling_se is not None else ""))
        print(report.format_report(ev.baselines, env.encoder_names))
        print(report.explain(ev.baselines, args.obs))
        return 0
    if args.cmd == "tables":
        return _tables(args)
    if args.cmd == "launch":
        import semcom_jax.cli.launch as launch

        command = args.command[1:] if args.command[:1] == ["--"] else args.command
        return launch.launch(args.processes, command)
    if args.cmd == "bench":
        import semcom_jax.cli.bench as bench

        print("semcom-jax bench (quick; full benchmarks: benchmarks/*.py, "
              "experiments/scaling_users.py)")
        bench.run(progress=lambda what, value: print(f"  {what:44s} {value}", flush=True),
                  quick=quick())
        import resource

        print(f"  {'peak host memory':44s} "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")
        return 0
    raise AssertionError(args.cmd)


def _print_summary(run_dir: str, summary: dict) -> None:
    """The run's figures, then the final greedy policy against every baseline."""
    from semcom_jax.baselines import report
    from semcom_jax.training import files

    print(json.dumps({k: summary[k] for k in ("env_steps", "wall_time_s", "final_eval_normalised",
                                              "final_eval_normalised_ceiling", "ceiling",
                                              "wall_time_to_0.9_s")}, indent=2))
    if summary.get("final_policy"):
        table = {**summary["final_policy"], **files.read_json(run_dir, files.BASELINES)}
        names = [k[len("share "):] for k in files.read_metrics(run_dir)[0]
                 if k.startswith("share ")]
        print(f"held-out episodes ({summary['env_steps']:,} env steps trained):")
        print(report.format_report(table, names))
        print(report.explain(table, _obs_mode(run_dir)))


def _obs_mode(run_dir: str):
    from semcom_jax.training import files

    return files.load_config(run_dir).env.obs_mode


def _eval_plan(args):
    """Prints what ``eval`` will compute and its estimated memory; returns the progress
    callback of the baselines."""
    import time

    from semcom_jax.baselines import report
    from semcom_jax.tables.format import load_table
    from semcom_jax.training import files

    config = files.load_config(args.run)
    ec = config.env
    u, q = args.users or ec.num_users, args.rbs or ec.num_rbs
    n = args.episodes or config.run.eval_episodes
    k = len(load_table(ec.table).encoder_names) if ec.table else 3
    draws = (config.run.ceiling_draws
             if ec.obs_mode == "paper" and "paper" in args.baselines else 0)
    names = ["random", "optimum"] + [b for b in args.baselines if b != "paper" or draws]
    est = report.memory_estimate(u, q, k, n, draws)
    from semcom_jax.baselines.auction import EXACT_UP_TO

    solver = "exact" if u <= EXACT_UP_TO else "auction with a certificate"
    print(f"evaluating at U={u} Q={q} on {n} held-out episodes, baselines: {', '.join(names)}"
          + (f" (paper ceiling: {draws} Monte-Carlo draws per episode)" if draws else "")
          + f"; optimum: {solver}"
          + f"; estimated memory of the baselines {est / 2**30:.2f} GiB, "
          f"{report.episode_batch(u, q, k, n)} episode(s) at a time", flush=True)
    t0 = time.perf_counter()

    def progress(done, total, seconds):
        took = ", ".join(f"{name} {s:.1f} s" for name, s in seconds.items())
        print(f"  baselines: {done}/{total} episodes ({took}; {time.perf_counter() - t0:.0f} s)",
              flush=True)
    return progress


def _tables(args) -> int:
    if args.kind == "synthetic":
        from semcom_jax.builders import synthetic

        synthetic.main(["--out", args.out, "--seed", str(args.seed)])
        return 0
    if args.kind == "tiny-models":
        from semcom_jax.builders import tiny

        print(json.dumps(tiny.make_all(args.out, args.seed), indent=2))
        return 0
    if args.kind == "train-encoders":
        from semcom_jax.builders import encoders as build

        spec = build.EncoderTableSpec(
            images=args.images, robust=not args.plain, nam=args.nam, receiver=args.receiver,
            nam_in_training=args.nam_in_training, epochs=args.epochs,
            train_per_class=args.train_per_class, features_per_class=args.features_per_class,
            snr_lo_db=args.snr_min, snr_hi_db=args.snr_max, snr_step_db=args.snr_step,
            draws=args.draws, seed=args.seed)
        if quick():
            spec = dataclasses.replace(spec, epochs=1, train_per_class=10, features_per_class=4,
                                       snr_step_db=10.0, draws=1)
            print(f"{QUICK_ENV} is set: 1 epoch on 10 images per class, a smoke test")
        meta = build.build(args.out, spec, progress=not args.no_progress)
        for name, acc, dm in zip(meta["encoders"], meta["accuracy_at_highest_snr"],
                                 meta["encoder_compute"]):
            print(f"  {name}: accuracy at the highest SNR {acc:.3f}, DM {dm:.2f}")
        print(f"wrote {args.out} ({meta['task']}, encoders {meta['encoders']})")
        return 0
    common = dict(names=args.names, batch_size=args.batch_size, resize=args.resize,
                  max_per_class=args.max_per_class, seed=args.seed, draws=args.draws)
    if args.checkpoints:
        common["checkpoints"] = args.checkpoints
    if args.kind == "clip":
        from semcom_jax.builders import clip

        spec = clip.ClipTableSpec(snr_lo_db=args.snr_min, snr_hi_db=args.snr_max,
                                  snr_step_db=args.snr_step, **common)
        meta = clip.build(args.images, args.out, spec, progress=not args.no_progress)
        for name, acc in zip(meta["encoders"], meta["accuracy_at_highest_snr"]):
            print(f"  {name}: zero-shot accuracy at the highest SNR {acc:.3f}")
    else:
        from semcom_jax.builders import regen

        extra = {"snr_db": args.snr_db} if args.snr_db else {}
        spec = regen.RegenTableSpec(judge=args.judge, num_steps=args.steps,
                                    guidance=args.guidance, **extra, **common)
        meta = regen.build(args.images, args.sd, args.out, spec, grid_png=args.grid,
                           progress=not args.no_progress)
        print(f"  chance similarity {meta['chance_score']:.3f}")
    print(f"wrote {args.out} ({meta['task']}, encoders {meta['encoders']})")
    return 0


if __name__ == "__main__":
    sys.exit(console())
