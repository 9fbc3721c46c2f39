"""A study report names the machine and precision its cells were trained with, from their run.json."""
import json

from tellkit.report.machine import machine_line


def _run(folder, cpu, bf16, malloc="/x/libmimalloc.so"):
    folder.mkdir(parents=True)
    versions = {"torch": "2.13.0+cpu", "malloc": malloc, **({"cpu": cpu, "gpu": "no GPU"} if cpu else {})}
    (folder / "run.json").write_text(json.dumps({"versions": versions, "train": {"bf16": bf16}}))
    return folder


def test_one_machine_is_named_once(tmp_path):
    runs = [_run(tmp_path / f"c{i}", "AMD EPYC (avx2/avx512f/avx512_bf16)", True) for i in range(3)]
    assert machine_line(runs) == ("Trained on AMD EPYC (avx2/avx512f/avx512_bf16), no GPU; bf16 autocast; "
                                  "torch 2.13.0+cpu, malloc mimalloc.")


def test_cells_from_two_machines_name_both_and_old_records_say_so(tmp_path):
    runs = [_run(tmp_path / "a", "Xeon (avx2/avx512f/avx512_bf16/amx_bf16)", True),
            _run(tmp_path / "b", None, False, malloc="system malloc"), tmp_path / "missing"]
    assert machine_line(runs) == ("Trained on Xeon (avx2/avx512f/avx512_bf16/amx_bf16), no GPU / CPU not recorded, "
                                  "GPU not recorded; bf16 autocast / fp32; torch 2.13.0+cpu, malloc mimalloc / "
                                  "torch 2.13.0+cpu, malloc system.")


def test_no_trained_cell_gives_no_line(tmp_path):
    assert machine_line([tmp_path / "base"]) == ""
