"""The training callbacks: the plateau schedule is torch's ReduceLROnPlateau, history.csv a row per epoch."""

import tf_landslide  # noqa: F401, I001  (first: it sets TF_USE_LEGACY_KERAS before TensorFlow loads)

import csv
import json
import types

import pytest
import tensorflow as tf

from tests.helpers import read_history
from tf_landslide import callbacks


# --- the plateau schedule is torch's ReduceLROnPlateau -------------------------------------------

# mode='min', threshold_mode='rel', threshold=1e-4, patience=2, factor=0.5: an epoch improves
# when loss < best * (1 - 1e-4); after more than 2 bad epochs in a row the rate halves.
PLATEAU_LOSSES = [
    1.0,  # 0: best 1.0
    0.99995,  # 1: not below 0.9999 (relative threshold): bad 1
    0.99995,  # 2: bad 2
    0.99995,  # 3: bad 3 > 2: reduce to 0.5, bad 0
    0.9998,  # 4: below 0.9999: best 0.9998
    2.0,  # 5: bad 1
    0.5,  # 6: best 0.5
    0.5,  # 7: bad 1
    0.5,  # 8: bad 2
    0.49996,  # 9: not below 0.49995: bad 3: reduce to 0.25
    0.49994,  # 10: below 0.49995: best (an absolute min_delta of 1e-4, Keras' rule, would not count it)
    0.49994,  # 11: bad 1
    0.49994,  # 12: bad 2 (Keras' absolute rule would be at bad 3 and reduce here)
]
PLATEAU_RATES = [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25]


def _fake_model(lr: float):
    return types.SimpleNamespace(optimizer=types.SimpleNamespace(learning_rate=tf.Variable(lr, dtype=tf.float32)))


def _plateau(model, state_path, patience=2, factor=0.5, write=True):
    callback = callbacks.TorchPlateau(factor, patience, 1e-4, state_path, write=write)
    callback.set_model(model)
    callback.on_train_begin()
    return callback


def test_plateau_reduces_exactly_when_torch_would(tmp_path):
    model = _fake_model(1.0)
    callback = _plateau(model, tmp_path / "plateau.json")
    rates = []
    for epoch, loss in enumerate(PLATEAU_LOSSES):
        callback.on_epoch_end(epoch, {"loss": loss})
        rates.append(float(model.optimizer.learning_rate.numpy()))
    assert rates == PLATEAU_RATES


def test_plateau_state_is_saved_and_resumed(tmp_path):
    state = tmp_path / "backup" / "plateau.json"
    first = _fake_model(1.0)
    callback = _plateau(first, state)
    for epoch, loss in enumerate(PLATEAU_LOSSES[:9]):
        callback.on_epoch_end(epoch, {"loss": loss})
    assert json.loads(state.read_text()) == {"best": 0.5, "bad_epochs": 2}
    # a new process: the learning rate comes back from the checkpoint, the plateau state from its file
    second = _fake_model(float(first.optimizer.learning_rate.numpy()))
    resumed = _plateau(second, state)
    rates = []
    for epoch, loss in enumerate(PLATEAU_LOSSES[9:], start=9):
        resumed.on_epoch_end(epoch, {"loss": loss})
        rates.append(float(second.optimizer.learning_rate.numpy()))
    assert rates == PLATEAU_RATES[9:]
    # without the state the resumed run would take epoch 9 as an improvement and reduce only at 12
    fresh = _fake_model(0.5)
    restarted = _plateau(fresh, None)
    rates = []
    for epoch, loss in enumerate(PLATEAU_LOSSES[9:], start=9):
        restarted.on_epoch_end(epoch, {"loss": loss})
        rates.append(float(fresh.optimizer.learning_rate.numpy()))
    assert rates == [0.5, 0.5, 0.5, 0.25] != PLATEAU_RATES[9:]
    # a finished run deletes its state, so the next run in this folder starts afresh
    resumed.on_train_end()
    assert not state.exists()


def test_plateau_of_a_non_chief_reads_but_never_writes_the_state(tmp_path):
    state = tmp_path / "plateau.json"
    state.write_text(json.dumps({"best": 0.5, "bad_epochs": 2}))
    model = _fake_model(1.0)
    callback = _plateau(model, state, write=False)
    callback.on_epoch_end(0, {"loss": 0.5})  # bad 3 > 2: reduces, as the chief does
    assert float(model.optimizer.learning_rate.numpy()) == 0.5
    callback.on_train_end()
    assert json.loads(state.read_text()) == {"best": 0.5, "bad_epochs": 2}  # the chief's file, untouched


def test_plateau_ignores_reductions_below_torch_eps():
    model = _fake_model(1e-8)
    callback = _plateau(model, None, patience=0, factor=0.1)
    callback.on_epoch_end(0, {"loss": 1.0})
    callback.on_epoch_end(1, {"loss": 1.0})  # bad 1 > 0, but 1e-8 - 1e-9 <= torch's eps 1e-8
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(1e-8)
    assert callback.bad_epochs == 0


# --- history.csv: one row per finished epoch, redone epochs replace theirs -----------------------


def _rows(path) -> list[tuple[int, float]]:
    with open(path) as handle:
        return [(int(row["epoch"]), float(row["loss"])) for row in csv.DictReader(handle)]


def test_history_writer_appends_a_row_per_epoch_and_replaces_redone_epochs(tmp_path):
    path = tmp_path / "history.csv"
    first = callbacks.HistoryWriter(tmp_path)
    for epoch, loss in enumerate([0.9, 0.8, 0.7]):
        first.on_epoch_begin(epoch)
        first.on_epoch_end(epoch, {"loss": loss, "val_loss": loss + 1})
    assert _rows(path) == [(0, 0.9), (1, 0.8), (2, 0.7)]
    assert read_history(tmp_path)[0] == {"epoch": "0", "loss": "0.9", "val_loss": "1.9"}
    # killed after epoch 2's row but before its backup: the resumed run starts again at epoch 2
    resumed = callbacks.HistoryWriter(tmp_path)
    resumed.on_epoch_begin(2)
    assert _rows(path) == [(0, 0.9), (1, 0.8)]
    inode = path.stat().st_ino
    resumed.on_epoch_end(2, {"loss": 0.6, "val_loss": 1.6})
    assert path.stat().st_ino != inode  # replaced in one rename, never rewritten in place
    resumed.on_epoch_begin(3)  # only the first epoch of a run trims
    resumed.on_epoch_end(3, {"loss": 0.5, "val_loss": 1.5})
    assert _rows(path) == [(0, 0.9), (1, 0.8), (2, 0.6), (3, 0.5)]
    assert [p.name for p in tmp_path.iterdir()] == ["history.csv"]  # no partial file left behind
    # a run that starts at epoch 0 (no backup) keeps nothing of an earlier, unfinished run
    restarted = callbacks.HistoryWriter(tmp_path)
    restarted.on_epoch_begin(0)
    assert _rows(path) == []
    restarted.on_epoch_end(0, {"loss": 0.4, "val_loss": 1.4})
    assert _rows(path) == [(0, 0.4)]
