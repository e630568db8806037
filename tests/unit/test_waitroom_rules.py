"""The waiting room's rules without storage: the draw is uniform, the budget follows the rate, admissions are
bound to one user and showtime and cannot be forged."""

from __future__ import annotations

import base64
import json
import uuid
from collections import Counter

import jwt
import pytest

from chalicelib import auth
from chalicelib import waitroom as rules

SECRET = "a-test-secret-that-is-long-enough-for-hs256"
ISSUER = "tickets"
# Chi-square critical values at p = 0.001: a fair draw fails these once in a thousand runs.
CHI2_999 = {4: 18.47, 9: 27.88}


def chi_square(observed: list[int]) -> float:
    expected = sum(observed) / len(observed)
    return sum((o - expected) ** 2 / expected for o in observed)


def test_each_entrant_is_first_in_the_draw_equally_often():
    entrants = [f"user-{i}" for i in range(5)]
    firsts = Counter(rules.draw_order([(rules.new_draw_number(), u) for u in entrants])[0] for _ in range(10_000))
    assert chi_square([firsts[u] for u in entrants]) < CHI2_999[4]


def test_joining_early_buys_no_better_place():
    """Ten entrants in join order, 4,000 draws: the place each gets is independent of when they joined (the
    decile of the draw a given joiner lands in is uniform)."""
    joiners = [f"joiner-{i}" for i in range(10)]
    landed = Counter()
    for _ in range(4_000):
        order = rules.draw_order([(rules.new_draw_number(), u) for u in joiners])
        landed[order.index(joiners[0])] += 1  # where the first to join ends up
    assert chi_square([landed[i] for i in range(10)]) < CHI2_999[9]


def test_the_draw_orders_by_number_and_breaks_ties_by_user():
    assert rules.draw_order([(5, "b"), (1, "c"), (5, "a")]) == ["c", "a", "b"]


def test_places_spread_over_the_draw_shards():
    shards = Counter(rules.draw_shard(uuid.uuid4().hex) for _ in range(8_000))
    assert set(shards) == set(range(rules.DRAW_SHARDS))
    assert max(shards.values()) < 1.25 * min(shards.values())


def test_the_budget_follows_the_rate_and_carries_fractions():
    allowance, given = 0.0, 0
    for _ in range(30):  # 30 steps of 2 s at 45 a minute: 45 admissions in a minute
        spent = rules.budget(
            allowance=allowance, rate_per_minute=45, elapsed=2, paused=False, max_shopping=None, shopping=0
        )
        allowance, given = spent.allowance, given + spent.admit
    assert given == 45


def test_a_pause_or_an_outage_does_not_bank_a_burst():
    paused = rules.budget(allowance=3.5, rate_per_minute=60, elapsed=120, paused=True, max_shopping=None, shopping=0)
    assert paused == rules.Budget(0, 0.0)
    after_outage = rules.budget(
        allowance=0, rate_per_minute=60, elapsed=600, paused=False, max_shopping=None, shopping=0
    )
    assert after_outage.admit == 60 * rules.MAX_ALLOWANCE_SECONDS // 60


def test_the_cap_limits_admissions_to_the_room_left():
    spent = rules.budget(allowance=0, rate_per_minute=600, elapsed=2, paused=False, max_shopping=5, shopping=3)
    assert spent.admit == 2
    full = rules.budget(allowance=0, rate_per_minute=600, elapsed=10, paused=False, max_shopping=5, shopping=5)
    assert full.admit == 0 and full.allowance <= 1


def test_polling_advice_stays_well_inside_the_heartbeat_timeout():
    for ahead in (0, 1, 50, 10_000, None):
        assert 3 <= rules.poll_after(ahead, 60) <= 20
    assert rules.poll_before_draw(3600) == 20 and rules.poll_before_draw(30) == 5
    assert rules.estimated_wait(120, 60, paused=False) == 120
    assert rules.estimated_wait(120, 60, paused=True) is None


def _admission(**overrides) -> str:
    claims = {"user_id": "u1", "showtime_id": "s1", "admission_id": "a1", "expires_at": 2_000, "issuer": ISSUER}
    claims.update(overrides)
    return rules.sign_admission(SECRET, **claims)


def verify(token: object, now: float = 1_000, user: str = "u1", showtime: str = "s1") -> str:
    return rules.verify_admission(token, SECRET, user_id=user, showtime_id=showtime, issuer=ISSUER, now=now)


def test_an_admission_is_bound_to_its_user_and_showtime():
    token = _admission()
    assert verify(token) == "a1"
    with pytest.raises(rules.AdmissionInvalid):
        verify(token, user="u2")
    with pytest.raises(rules.AdmissionInvalid):
        verify(token, showtime="s2")


def test_missing_expired_forged_and_confused_tokens_are_refused():
    with pytest.raises(rules.AdmissionRequired):
        verify(None)
    with pytest.raises(rules.AdmissionLapsed):
        verify(_admission(), now=2_000)
    header, payload, _ = _admission().split(".")
    with pytest.raises(rules.AdmissionInvalid):
        verify(f"{header}.{payload}.{'A' * 43}")  # forged signature
    unsigned = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "JWT"}).encode()).rstrip(b"=").decode()
    with pytest.raises(rules.AdmissionInvalid):
        verify(f"{unsigned}.{payload}.")  # alg none
    other_key = jwt.encode(
        {"sub": "u1", "sid": "s1", "jti": "a1", "exp": 2_000, "aud": rules.ADMISSION_AUDIENCE, "iss": ISSUER},
        "another-secret-that-is-long-enough-for-hs256",
        algorithm="HS256",
    )
    with pytest.raises(rules.AdmissionInvalid):
        verify(other_key)
    config = auth.TokenConfig(
        secret=SECRET, issuer=ISSUER, audience="tickets-api", access_seconds=300, refresh_seconds=3600
    )
    # An access token of the same user, signed with the same secret, its session id equal to the showtime's: still
    # not an admission (its audience differs), and an admission is not an access token.
    access = auth.issue_token(config, "u1", "access", now=1_000, session_id="s1")
    with pytest.raises(rules.AdmissionInvalid):
        verify(access)
    with pytest.raises(Exception, match="(?i)audience|token"):
        auth.verify_token(config, _admission(expires_at=10**10), "access")
    with pytest.raises(rules.AdmissionInvalid):
        verify(12345)
