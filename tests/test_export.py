"""`warmstart export`: the inference model written from a checkpoint gives the trained model's logits."""

from __future__ import annotations

import numpy as np
import paddle

from app.cli import main
from tests.train_helpers import ROOT, final_model, run_inprocess, tiny_overrides


def test_export_digits_round_trip_through_paddle_inference(tmp_path, capsys):
    ov = tiny_overrides(tmp_path / "run", **{"schedule.total_steps": 10, "schedule.warmup.steps": 2})
    assert run_inprocess(ov)[0] == 0
    capsys.readouterr()  # drop the training run's log lines
    out = tmp_path / "exported"
    args = ["export", "--config", str(ROOT / "configs/demo.yaml"), "--out", str(out)]
    assert main(args + [a for o in ov for a in ("--set", o)]) == 0
    assert sorted(p.name for p in out.iterdir() if p.suffix in (".pdmodel", ".pdiparams")) == [
        "inference.pdiparams", "inference.pdmodel"]  # fmt: skip
    assert capsys.readouterr().out.splitlines() == [
        str(out / "inference.pdmodel"),
        str(out / "inference.pdiparams"),
    ]

    from paddle import inference

    config = inference.Config(str(out / "inference.pdmodel"), str(out / "inference.pdiparams"))
    config.disable_gpu()
    predictor = inference.create_predictor(config)
    x = np.random.default_rng(0).random((5, 1, 8, 8), dtype=np.float32)
    handle = predictor.get_input_handle(predictor.get_input_names()[0])
    handle.copy_from_cpu(x)
    predictor.run()
    got = predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()

    from app.tasks.digits import DigitsNet

    with paddle.utils.unique_name.guard():
        net = DigitsNet(10, 4, 0.1)
    net.set_state_dict({k: paddle.to_tensor(v) for k, v in final_model(ov).items()})
    net.eval()
    np.testing.assert_allclose(got, net(paddle.to_tensor(x)).numpy(), rtol=1e-5, atol=1e-6)


def test_export_of_a_task_without_format_is_a_config_error(tmp_path, capsys, monkeypatch):
    import app.tasks.digits as digits

    monkeypatch.delattr(digits.DigitsTask, "export")
    ov = tiny_overrides(tmp_path)
    code = main(["export", "-c", str(ROOT / "configs/demo.yaml"), "--out", str(tmp_path / "o")]
                + [a for o in ov for a in ("--set", o)])  # fmt: skip
    assert code == 2
    assert capsys.readouterr().err.strip() == "warmstart: config: task.kind 'digits' has no export format"
