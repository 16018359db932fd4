"""Shared pieces of the routing bad-input tests (test_routing_bad_input.py and
test_routing_bad_input_batches.py): the error classes, a small world, and `expect`."""

from __future__ import annotations

import math

import pytest

import replikit
from replikit import LagTracker, Node, Router, Topology

IA = replikit.InvalidArgument
AT = replikit.ArgumentTypeError
TE = replikit.TokenError
NF = replikit.NotFound
NAN = math.nan
INF = math.inf
HAVE_HMAC = hasattr(replikit, "HmacSigner")


def world():
    t = Topology("p", [Node("r1", region="eu"), "r2"])
    lag = LagTracker(t)
    lag.primary_sample("0/100", now_ns=1000)
    router = Router(t)
    return t, lag, router


def expect(fn, exc=IA, argument=None):
    with pytest.raises(exc) as info:
        fn()
    if argument is not None:
        assert info.value.argument == argument, (info.value.argument, str(info.value))
        assert str(info.value).startswith(argument + ":"), str(info.value)
    return info.value
