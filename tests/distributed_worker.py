"""Started by test_distributed.py under `torchrun`: learns with each method named on the command
line (tiny preset) and saves this process's weights, so the test can compare the processes.

    python -m torch.distributed.run --nproc_per_node 2 distributed_worker.py PAIRS OUT METHOD[=BASE_MODEL]...

(pairedit=FOLDER names the tiny backbone pairedit builds on; paint-by-example=FOLDER trains that
tiny Paint-by-Example model on the before/ images, which then hold a boxes.json.)
"""

import sys
from pathlib import Path

from safetensors.torch import save_file

from analogize.api import learn
from analogize.distributed import process_state
from analogize.pairs import PairSet

pairs_folder, out, *methods = sys.argv[1:]
state = process_state()
pairs = PairSet.from_folder(Path(pairs_folder))
for given in methods:
    method, _, base_model = given.partition("=")
    if method == "paint-by-example":
        from analogize.methods.paint_by_example import BoxedImages, train_paint_by_example, training_config

        model = train_paint_by_example(BoxedImages.from_folder(Path(pairs_folder) / "before"),
                                       training_config("tiny", base_model=base_model, steps=3, log_with="none"),
                                       Path(out) / "pbe", progress=False)
        weights = {**{f"unet.{k}": v for k, v in model.unet.state_dict().items()},
                   **{f"encoder.{k}": v for k, v in model.image_encoder.state_dict().items()}}
    else:
        weights = learn(pairs, method, "tiny", steps=6, **({"base_model": base_model} if base_model else {})).state_dict()
    tensors = {name: tensor.contiguous() for name, tensor in weights.items()}
    name = f"{method}-process{state.process_index}-of{state.num_processes}.safetensors"
    save_file(tensors, Path(out) / name)
