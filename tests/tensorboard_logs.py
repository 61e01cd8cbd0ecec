"""The kit's TensorBoard logs, read back with TensorBoard's own reader (its EventAccumulator).

1. `fmnist train` (smoke profile): every epoch's scalars equal history.json, the step losses are
   there, the sample batch and the confusion matrix decode as PNG images, the test scores equal
   result.json, and the run's HParams session parses with the HParams plugin's own protos.
2. A `fmnist train` killed with SIGKILL in a later epoch and run again with --resume: each epoch
   and each logged step is shown once, and the epoch scalars equal the final history.json.

Run by `make test` (python tests/tensorboard_logs.py); needs the fmnist binary on PATH (env.sh).
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import metadata as hparams_metadata

EPOCH_TAGS = {
    "loss/train": "train_loss",
    "accuracy/train": "train_accuracy",
    "loss/validation": "val_loss",
    "accuracy/validation": "val_accuracy",
    "learning_rate": "learning_rate",
    "images_per_s": "images_per_s",
    "epoch": "epoch",
}


def fail(msg):
    sys.exit(f"tensorboard_logs: FAILED: {msg}")


def read(logdir):
    acc = EventAccumulator(logdir, size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def check_epochs(acc, history, where):
    """Each epoch once, at increasing steps, equal (as float32) to history.json."""
    epochs = history["epochs"]
    for tag, field in EPOCH_TAGS.items():
        events = acc.Scalars(tag)
        if len(events) != len(epochs):
            fail(f"{where}: {tag} has {len(events)} points for {len(epochs)} epochs: {[e.step for e in events]}")
        steps = [e.step for e in events]
        if steps != sorted(set(steps)):
            fail(f"{where}: {tag} steps repeat or go back: {steps}")
        for e, h in zip(events, epochs):
            want = h[field]
            if abs(e.value - want) > 1e-6 * max(1.0, abs(want)):
                fail(f"{where}: {tag} at step {e.step} is {e.value}, history.json says {want}")
    return [e.step for e in acc.Scalars("loss/train")]


def check_steps_once(acc, where):
    steps = [e.step for e in acc.Scalars("loss/train_step")]
    if not steps:
        fail(f"{where}: no loss/train_step points")
    if steps != sorted(set(steps)):
        fail(f"{where}: loss/train_step steps repeat or go back: {steps}")
    return steps


def train(out, *extra, kill_after_epochs=None):
    cmd = ["fmnist", "train", "--profile", "smoke", "--model", "cnn4", "--out", out, *extra]
    if kill_after_epochs is None:
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        return
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    state = os.path.join(out, "state.json")
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        try:
            with open(state) as f:
                if json.load(f)["epochs_done"] >= kill_after_epochs:
                    break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    if proc.poll() is not None:
        fail(f"the run ended before it could be killed after epoch {kill_after_epochs}")
    time.sleep(1.0)  # into the next epoch: some of its step losses reach the log before the kill
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def main():
    with tempfile.TemporaryDirectory(prefix="fmnist-tb-") as tmp:
        # 1. One run, read back whole.
        out = os.path.join(tmp, "cnn4")
        train(out)
        logdir = os.path.join(out, "tensorboard")
        acc = read(logdir)
        with open(os.path.join(out, "history.json")) as f:
            history = json.load(f)
        with open(os.path.join(out, "result.json")) as f:
            result = json.load(f)
        check_epochs(acc, history, "one run")
        check_steps_once(acc, "one run")
        tags = acc.Tags()
        for image in ("inputs", "confusion_matrix/test"):
            if image not in tags["images"]:
                fail(f"no {image} image; images: {tags['images']}")
            png = acc.Images(image)[-1]
            if png.encoded_image_string[:8] != b"\x89PNG\r\n\x1a\n" or png.width <= 0:
                fail(f"{image} is not a PNG image")
        test_acc = acc.Scalars("accuracy/test")
        if len(test_acc) != 1:
            fail(f"accuracy/test has {len(test_acc)} points")
        want = result.get("test_accuracy")
        if want is None or abs(test_acc[0].value - want) > 1e-6:
            fail(f"accuracy/test is {test_acc[0].value}, result.json says {want}")
        if hparams_metadata.SESSION_START_INFO_TAG not in tags["tensors"]:
            fail(f"no HParams session; tensors: {tags['tensors']}")
        content = acc.SummaryMetadata(hparams_metadata.SESSION_START_INFO_TAG).plugin_data.content
        start = hparams_metadata.parse_session_start_info_plugin_data(content)
        hp = start.hparams
        if hp["model"].string_value != "cnn4" or "seed" not in hp or hp["epochs"].number_value != len(history["epochs"]):
            fail(f"the HParams session reads {dict(hp)}")
        print(
            f"tensorboard_logs: one run: {len(history['epochs'])} epochs equal to history.json, "
            f"{len(acc.Scalars('loss/train_step'))} step losses, images and HParams session parsed"
        )

        # 2. Killed with SIGKILL during epoch 3 of 5, then resumed.
        out = os.path.join(tmp, "killed")
        train(out, "--epochs", "5", kill_after_epochs=2)
        with open(os.path.join(out, "state.json")) as f:
            killed_at = json.load(f)["epochs_done"]
        if killed_at >= 5:
            fail("the run finished before the kill")
        before = read(os.path.join(out, "tensorboard"))
        raw_steps = [e.step for e in before.Scalars("loss/train_step")]
        train(out, "--epochs", "5", "--resume")
        acc = read(os.path.join(out, "tensorboard"))
        with open(os.path.join(out, "history.json")) as f:
            history = json.load(f)
        if len(history["epochs"]) != 5:
            fail(f"the resumed run's history has {len(history['epochs'])} epochs")
        epoch_steps = check_epochs(acc, history, "killed and resumed")
        if max(raw_steps) <= epoch_steps[killed_at - 1]:
            fail(f"the killed run logged nothing past epoch {killed_at} (steps {raw_steps}): nothing to drop")
        steps = check_steps_once(acc, "killed and resumed")
        files = [n for n in os.listdir(os.path.join(out, "tensorboard")) if "tfevents" in n]
        if len(files) != 2:
            fail(f"expected the killed run's event file and the resumed one's, found {files}")
        print(
            f"tensorboard_logs: killed after {killed_at} epochs (its log reached step {max(raw_steps)}), "
            f"resumed: 5 epochs once at steps {epoch_steps}, {len(steps)} step losses once, in {len(files)} files"
        )


if __name__ == "__main__":
    main()
