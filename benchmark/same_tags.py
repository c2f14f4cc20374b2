"""Whether a script gives the same TensorBoard values as at a git ref, for the same flags (a simplification's check).

    python benchmark/same_tags.py 67452ae dqn.py --seed 1 --total-timesteps 30000 --eval-episodes 3

Runs the script as it is in this folder and as it was at REF, one after the other, each in its own temporary folder
with `--no-cuda`, reads every scalar tag back from the events (all but `charts/SPS`, a wall-clock rate) and compares
the (step, value) lists. Prints one line per tag and exits 1 if any differs.
"""

import os
import subprocess
import sys
import tempfile

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tags(source, name, flags):
    """{tag: [(step, value)]} of one run of `source` (the script's text) saved as `name`."""
    with tempfile.TemporaryDirectory() as folder:
        with open(os.path.join(folder, name), "w") as f:
            f.write(source)
        run = subprocess.run([sys.executable, name, *flags, "--no-cuda"], cwd=folder, capture_output=True, text=True)
        if run.returncode != 0:
            sys.exit(f"same_tags.py: {name} failed:\n{run.stderr[-2000:]}")
        [run_dir] = os.listdir(os.path.join(folder, "runs"))
        events = EventAccumulator(os.path.join(folder, "runs", run_dir), size_guidance={"scalars": 0})
        events.Reload()
        names = [t for t in events.Tags()["scalars"] if t != "charts/SPS"]
        return {t: [(e.step, e.value) for e in events.Scalars(t)] for t in names}


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    ref, name, flags = sys.argv[1], sys.argv[2], sys.argv[3:]
    old = subprocess.run(["git", "-C", ROOT, "show", f"{ref}:{name}"], capture_output=True, text=True)
    if old.returncode != 0:
        sys.exit(f"same_tags.py: {old.stderr.strip()}")
    with open(os.path.join(ROOT, name)) as f:
        new = tags(f.read(), name, flags)
    before = tags(old.stdout, name, flags)
    for tag in sorted(before.keys() | new.keys()):
        same = before.get(tag) == new.get(tag)
        print(f"{tag}: {len(new.get(tag, []))} points, {'same' if same else 'DIFFERENT'}")
    sys.exit(0 if before == new else 1)
