"""host_array: the snapshot copy equals Tensor.numpy() for every dtype and layout, and owns its memory."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from app.checkpoint.tensorio import host_array


@pytest.mark.parametrize(
    "dtype", ["float32", "float16", "bfloat16", "float64", "int64", "int32", "uint8", "bool"]
)
def test_same_values_and_dtype_as_numpy(dtype):
    t = paddle.to_tensor(np.arange(12).reshape(3, 4)).astype(dtype)
    got, ref = host_array(t), t.numpy()
    assert got.dtype == ref.dtype and got.shape == ref.shape
    assert np.array_equal(got, ref)


def test_layouts_scalars_and_empty():
    t = paddle.arange(12, dtype="float32").reshape([3, 4]).transpose([1, 0])
    assert np.array_equal(host_array(t), t.numpy())
    assert host_array(paddle.to_tensor(2.5)).shape == () and float(host_array(paddle.to_tensor(2.5))) == 2.5
    assert host_array(paddle.zeros([0, 3])).shape == (0, 3)


def test_the_copy_is_independent_of_the_parameter():
    p = paddle.create_parameter([5], dtype="float32")
    p.set_value(np.arange(5, dtype="float32"))
    copy = host_array(p)
    copy[0] = 42.0
    assert float(p[0]) == 0.0
    p.set_value(np.full(5, 7.0, dtype="float32"))
    assert copy.tolist() == [42.0, 1.0, 2.0, 3.0, 4.0]
