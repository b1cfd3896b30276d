"""python3 -m dtrn_ref <command> [options]; each command's --help lists its options."""
import importlib
import sys

# command -> (module, one-line summary); each module has main(argv) -> exit code.
COMMANDS = {
    "train": ("dtrn_ref.train", "train DTRN or a baseline on synthetic data or a behaviour log; export a checkpoint"),
    "compare": ("dtrn_ref.compare", "train several models over seeds with one budget; per-task AUC/GAUC with paired SEs"),
    "golden": ("dtrn_ref.golden", "score requests with a checkpoint in float: the oracle for the C++ parity tests"),
    "requests": ("dtrn_ref.requests_cli", "write random requests for a config, or (--log) the requests a log yields"),
    "synth-log": ("dtrn_ref.synth_log", "write a synthetic UserBehavior-layout log of any size (scale tests)"),
    "fixture": ("dtrn_ref.fixture", "train a config briefly, write requests and float64 goldens into a folder (parity)"),
    "init": ("dtrn_ref.golden", "export a randomly initialised checkpoint for a config (tests): see 'init --help'"),
}


def usage(stream):
    print(__doc__, file=stream)
    for name, (_, summary) in COMMANDS.items():
        print(f"  {name:10s} {summary}", file=stream)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        usage(sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd not in COMMANDS:
        print(f"dtrn_ref: unknown command '{cmd}'", file=sys.stderr)
        usage(sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[cmd][0])
    entry = getattr(module, "init_main" if cmd == "init" else "main")
    return entry(rest)


if __name__ == "__main__":
    sys.exit(main())
