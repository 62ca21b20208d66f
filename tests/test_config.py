"""Configuration values: documented defaults, validation naming the field, copies, the budget."""

from __future__ import annotations

import dataclasses
import math
import random
import threading
from typing import Any

import pytest

from synapse_sdk.config import RetryBudget, RetryPolicy, SDKConfig, TimeoutConfig
from synapse_sdk.exceptions import SynapTransientError


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_retry_policy_defaults_are_the_documented_ones() -> None:
    policy = RetryPolicy()
    assert policy.max_attempts == 3
    assert policy.backoff_base == 0.5
    assert policy.backoff_max == 10.0
    assert policy.multiplier == 2.0
    assert policy.jitter == "full"
    assert policy.retryable_errors == (SynapTransientError,)
    assert policy.retry_after_max == 60.0
    assert policy.deadline is None
    assert policy.budget is not None
    assert policy.budget.capacity == 50.0
    assert policy.enabled


def test_timeout_defaults() -> None:
    assert TimeoutConfig() == TimeoutConfig(
        connect=5.0, read=30.0, write=30.0, stream_idle=60.0, total=120.0
    )
    assert TimeoutConfig(total=None).total is None  # the per-attempt bound can be turned off


INVALID_POLICY_FIELDS: list[tuple[str, Any]] = [
    ("max_attempts", 0),
    ("max_attempts", -1),
    ("max_attempts", 2.5),
    ("max_attempts", True),
    ("max_attempts", "3"),
    ("backoff_base", -0.1),
    ("backoff_base", math.nan),
    ("backoff_base", math.inf),
    ("backoff_base", "1"),
    ("backoff_max", -1.0),
    ("backoff_max", math.nan),
    ("multiplier", math.nan),
    ("multiplier", 0.5),
    ("multiplier", -2),
    ("jitter", "bogus"),
    ("jitter", None),
    ("retryable_errors", [SynapTransientError]),
    ("retryable_errors", (int,)),
    ("retryable_errors", (SynapTransientError, "ValueError")),
    ("retry_after_max", -1),
    ("retry_after_max", math.nan),
    ("deadline", 0),
    ("deadline", -5),
    ("deadline", math.inf),
    ("budget_capacity", -1),
    ("budget_capacity", math.nan),
    ("budget_refill_per_success", -0.1),
    ("budget_refill_per_second", math.inf),
]


@pytest.mark.parametrize(("field", "value"), INVALID_POLICY_FIELDS,
                         ids=[f"{f}={v!r}" for f, v in INVALID_POLICY_FIELDS])
def test_invalid_policy_value_raises_value_error_naming_the_field(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=field):
        RetryPolicy(**{field: value})
    with pytest.raises(ValueError, match=field):  # copies are validated the same way
        RetryPolicy().replace(**{field: value})


@pytest.mark.parametrize("field", ["connect", "read", "write", "stream_idle", "total"])
@pytest.mark.parametrize("value", [0, -1.0, math.nan, math.inf, "5"])
def test_invalid_timeout_raises_value_error_naming_the_field(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=f"TimeoutConfig.{field}"):
        TimeoutConfig(**{field: value})


@pytest.mark.parametrize(
    ("field", "value"),
    [("retry_policy", "fast"), ("timeouts", 3.0), ("language", ""), ("language", 7),
     ("tenant", ""), ("tenant", "a b"), ("tenant", 7), ("token_kind", "bearer")],
)
def test_invalid_sdk_config_raises_value_error_naming_the_field(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=f"SDKConfig.{field}"):
        SDKConfig(**{field: value})


def test_values_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        RetryPolicy().max_attempts = 5  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        TimeoutConfig().read = 1.0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        SDKConfig().retry_policy = None  # type: ignore[misc]


def test_variants_by_copy_leave_the_original_alone() -> None:
    policy = RetryPolicy()
    more = policy.replace(max_attempts=5, jitter="equal")
    assert more.max_attempts == 5 and more.jitter == "equal"
    assert policy.max_attempts == 3 and policy.jitter == "full"
    config = SDKConfig()
    quick = config.replace(timeouts=config.timeouts.replace(read=2.0))
    assert quick.timeouts.read == 2.0
    assert config.timeouts.read == 30.0


def test_budget_is_shared_per_policy_instance_not_across_copies() -> None:
    policy = RetryPolicy()
    assert policy.budget is policy.budget
    copy = policy.replace()
    assert copy == policy  # equal values ...
    assert copy.budget is not policy.budget  # ... but each instance owns its own bucket
    assert RetryPolicy().budget is not RetryPolicy().budget
    assert policy.budget is not None
    assert policy.budget.try_spend()
    assert copy.budget is not None
    assert copy.budget.tokens == copy.budget.capacity  # spending one left the other untouched


def test_budget_can_be_turned_off_and_disabled_policy_has_none() -> None:
    assert RetryPolicy(budget_capacity=None).budget is None
    disabled = RetryPolicy.disabled()
    assert disabled.max_attempts == 1
    assert not disabled.enabled
    assert disabled.budget is None


def test_sdk_config_retry_policy_none_means_one_attempt() -> None:
    config = SDKConfig(retry_policy=None)
    assert config.effective_retry_policy.max_attempts == 1
    default = SDKConfig()
    assert default.effective_retry_policy is default.retry_policy


def test_from_env_reads_token_and_tenant_and_fields_win() -> None:
    env = {"SYNAPSE_TOKEN": "syn_env-secret", "SYNAPSE_TENANT": "acme"}
    config = SDKConfig.from_env(env)
    assert (config.token, config.tenant, config.token_kind) == ("syn_env-secret", "acme", "access")
    assert "acme" in repr(config) and "syn_env-secret" not in repr(config)
    explicit = SDKConfig.from_env(env, tenant="other", token_kind="drf")
    assert (explicit.token, explicit.tenant, explicit.token_kind) == (
        "syn_env-secret", "other", "drf"
    )
    empty = SDKConfig.from_env({"SYNAPSE_TOKEN": "", "SYNAPSE_TENANT": ""})
    assert (empty.token, empty.tenant) == (None, None)


def test_token_never_appears_in_repr() -> None:
    config = SDKConfig(token="sk-very-secret-token")
    assert "sk-very-secret-token" not in repr(config)
    assert "sk-very-secret-token" not in str(config)


def test_is_retryable_follows_the_list() -> None:
    from synapse_sdk.exceptions import ContextNotFoundError, NetworkTimeoutError

    policy = RetryPolicy(retryable_errors=(NetworkTimeoutError, ContextNotFoundError))
    assert policy.is_retryable(ContextNotFoundError("x"))
    assert policy.is_retryable(NetworkTimeoutError("x"))
    assert not policy.is_retryable(SynapTransientError("x"))


# --- RetryBudget ----------------------------------------------------------------------------


def test_budget_spends_until_empty_and_never_goes_negative() -> None:
    clock = Clock()
    budget = RetryBudget(3, refill_per_success=0.0, refill_per_second=0.0, clock=clock)
    assert [budget.try_spend() for _ in range(5)] == [True, True, True, False, False]
    assert budget.tokens == 0.0


def test_budget_refills_on_success_and_time_up_to_capacity() -> None:
    clock = Clock()
    budget = RetryBudget(2, refill_per_success=0.5, refill_per_second=1.0, clock=clock)
    assert budget.try_spend() and budget.try_spend()
    assert not budget.try_spend()
    budget.record_success()
    assert budget.tokens == 0.5
    budget.record_success()
    assert budget.try_spend()  # two successes gave back one token
    clock.now += 1.5
    assert budget.tokens == 1.5
    clock.now += 100
    assert budget.tokens == 2.0  # never above capacity
    budget.record_success()
    assert budget.tokens == 2.0  # a full bucket stays full


def test_budget_is_thread_safe() -> None:
    budget = RetryBudget(100, refill_per_success=0.0, refill_per_second=0.0)
    spent: list[int] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        spent.append(sum(budget.try_spend() for _ in range(50)))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(spent) == 100
    assert budget.tokens == 0.0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"capacity": -1}, "capacity"), ({"capacity": math.nan}, "capacity"),
     ({"capacity": 1, "refill_per_success": -1}, "refill_per_success"),
     ({"capacity": 1, "refill_per_second": math.inf}, "refill_per_second")],
)
def test_budget_validates(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        RetryBudget(**kwargs)


def test_budget_repr_shows_tokens() -> None:
    assert repr(RetryBudget(4, refill_per_second=0.0)) == "RetryBudget(tokens=4.00, capacity=4)"


def test_policies_and_configs_survive_pickle_and_deepcopy() -> None:
    """Actions may run in other processes: a config travels by pickle, its budget with it."""
    import copy
    import pickle

    policy = RetryPolicy(max_attempts=5, jitter="equal", budget_capacity=3.0)
    assert policy.budget is not None
    assert policy.budget.try_spend()
    config = SDKConfig(retry_policy=policy, language="ko", token="t-secret")
    for clone in (pickle.loads(pickle.dumps(config)), copy.deepcopy(config)):
        assert clone == config  # the budget is compare=False: same settings
        assert clone.retry_policy is not None and clone.retry_policy.budget is not None
        budget = clone.retry_policy.budget
        assert budget is not policy.budget  # a copy owns its own bucket and lock
        assert budget.capacity == 3.0
        assert 2.0 <= budget.tokens <= 3.0  # the spent token travelled (time may refill)
        assert budget.try_spend() and budget.try_spend()
    no_budget = RetryPolicy(budget_capacity=None)
    assert pickle.loads(pickle.dumps(no_budget)).budget is None


@pytest.mark.parametrize("jitter", ["none", "full", "equal", "decorrelated"])
def test_backoff_base_above_backoff_max_is_accepted_and_every_wait_capped(jitter: Any) -> None:
    from synapse_sdk.retry import backoff_delay

    policy = RetryPolicy(backoff_base=5.0, backoff_max=1.0, jitter=jitter, max_attempts=10)
    rng = random.Random(7)
    waits = [backoff_delay(policy, n, rng=rng, previous=prev) for n, prev in
             ((0, None), (1, 1.0), (5, 1.0), (60, 0.5))]
    assert all(0.0 <= wait <= 1.0 for wait in waits)
    if jitter in ("none", "decorrelated"):
        assert waits == [1.0] * 4
