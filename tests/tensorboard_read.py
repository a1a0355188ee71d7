"""Reads TensorBoard event files with TensorBoard's own reader, for tests/train/test_tensorboard.cpp.

  tensorboard_read.py run LOGDIR OUTDIR
      Loads LOGDIR (one run) with tensorboard's EventAccumulator (purging orphaned data, as
      `tensorboard --logdir` does) and prints one JSON object:
        {"scalars": {tag: [[step, value], ...]}, "images": {tag: [[step, width, height, file], ...]},
         "text": {tag: [[step, text], ...]}}
      Each image's encoded bytes are written to OUTDIR/<n>.png (the `file` above).
  tensorboard_read.py records FILE
      Reads FILE's records with tensorboard's TFRecord reader and prints
        {"records": N, "error": null | "the reader's DataLossError message"}
"""
import json
import logging
import os
import sys

from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.compat.tensorflow_stub import errors, pywrap_tensorflow


def read_run(logdir, outdir):
    acc = ea.EventAccumulator(
        logdir,
        size_guidance={ea.SCALARS: 0, ea.IMAGES: 0, ea.TENSORS: 0},
        purge_orphaned_data=True,
    )
    acc.Reload()
    tags = acc.Tags()
    out = {"scalars": {}, "images": {}, "text": {}}
    for tag in tags[ea.SCALARS]:
        out["scalars"][tag] = [[e.step, e.value] for e in acc.Scalars(tag)]
    n = 0
    for tag in tags[ea.IMAGES]:
        rows = []
        for e in acc.Images(tag):
            path = os.path.join(outdir, "%d.png" % n)
            n += 1
            with open(path, "wb") as f:
                f.write(e.encoded_image_string)
            rows.append([e.step, e.width, e.height, path])
        out["images"][tag] = rows
    for tag in tags[ea.TENSORS]:
        if acc.SummaryMetadata(tag).plugin_data.plugin_name != "text":
            continue
        out["text"][tag] = [
            [e.step, e.tensor_proto.string_val[0].decode("utf-8")] for e in acc.Tensors(tag)
        ]
    return out


def read_records(path):
    reader = pywrap_tensorflow.PyRecordReader_New(path)
    n = 0
    while True:
        try:
            reader.GetNext()
        except errors.OutOfRangeError:
            return {"records": n, "error": None}
        except errors.DataLossError as e:
            return {"records": n, "error": e.message}
        n += 1


def main(argv):
    # EventAccumulator logs its purges of orphaned data (after a resume) as warnings; stdout
    # must hold the JSON alone.
    logging.getLogger("tensorboard").setLevel(logging.ERROR)
    if len(argv) == 4 and argv[1] == "run":
        result = read_run(argv[2], argv[3])
    elif len(argv) == 3 and argv[1] == "records":
        result = read_records(argv[2])
    else:
        sys.stderr.write(__doc__)
        return 2
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
