"""The local runtime notices its own faults: each part of `make run` killed or cut off in the middle of
purchases, and what the stack does about it (restart, stop with one line, ride out, tell the health check);
and its data surviving a restart."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import requests

from tests.support import payflow
from tests.support.payflow import SLOW, TIMEOUT, Buyer, Emulator, approve_on_page, free_seats, wait_until
from tests.support.stack import free_port, running_stack

pytestmark = pytest.mark.slow


def health(stack) -> tuple[int, dict]:
    response = requests.get(stack.api("health/"), timeout=TIMEOUT)
    return response.status_code, response.json()


def part_pid(stack, part: str) -> int:
    return health(stack)[1]["parts"][part]["pid"]


def demo_showtime(stack) -> payflow.Showtime:
    from local.seed import THEATERS

    return next(s for s in payflow.showtimes(stack) if s.theater in THEATERS)


def approved(buyer: Buyer, showtime: payflow.Showtime, seats: list[str]) -> tuple[dict, payflow.Redirect]:
    buyer.hold(showtime, seats)
    created = buyer.created(showtime)
    return created, approve_on_page(created["approval_url"])


def executing_slowly(
    stack, emulator: Emulator, delay: float
) -> tuple[Buyer, dict, threading.Thread, list[requests.Response]]:
    """A buyer's execute left waiting on a capture PayPal holds for `delay` s: (buyer, order, its thread, its
    answer once the thread ends)."""
    showtime = demo_showtime(stack)
    buyer = Buyer(stack)
    created, redirect = approved(buyer, showtime, free_seats(stack, showtime, 1))
    emulator.fault("capture", "slow", delay=delay)
    answers: list[requests.Response] = []
    execute = threading.Thread(target=lambda: answers.append(buyer.execute(redirect)))
    execute.start()
    time.sleep(0.5)  # the capture is in flight
    return buyer, created, execute, answers


def test_event_sources_killed_mid_purchases_restart_and_every_purchase_completes():
    with running_stack(env={"SWEEP_INTERVAL_SECONDS": "1"}) as stack:
        Emulator(f"{stack.base_url}/paypal").set_webhook_url(None)  # the SQS path alone must finish them
        showtime = demo_showtime(stack)
        buyers = [Buyer(stack) for _ in range(3)]
        seats = free_seats(stack, showtime, 6)
        pending = [approved(buyer, showtime, seats[2 * i : 2 * i + 2]) for i, buyer in enumerate(buyers)]
        viewer = Buyer(stack).room(showtime)
        try:
            os.kill(part_pid(stack, "event_sources"), signal.SIGKILL)
            for buyer, (_, redirect) in zip(buyers, pending, strict=True):
                assert buyer.execute(redirect).status_code == 200
            for buyer, (created, _) in zip(buyers, pending, strict=True):
                buyer.wait_order(created["order_id"], "paid", timeout=60)
            viewer.wait_for(seats, "sold")  # broadcasts resumed with the new process
        finally:
            viewer.close()
        status, body = wait_until(lambda: (h := health(stack))[0] == 200 and h, what="a healthy stack again")
        assert body["parts"]["event_sources"]["restarts"] >= 1
        assert any("event-sources" in line and "restarting it" in line for line in stack.output)


def test_rest_lambdas_killed_mid_request_answer_502_restart_and_the_purchase_still_completes():
    with running_stack() as stack:
        # The execute waits on the capture inside the REST Lambdas' process.
        buyer, created, execute, answers = executing_slowly(stack, Emulator(f"{stack.base_url}/paypal"), 4)
        killed = part_pid(stack, "rest_lambdas")
        os.kill(killed, signal.SIGKILL)
        execute.join(timeout=30)
        assert answers[0].status_code == 502, answers[0].text
        assert answers[0].json()["code"] == "bad_gateway"
        _, body = wait_until(lambda: (h := health(stack))[0] == 200 and h, what="a healthy stack again")
        assert body["parts"]["rest_lambdas"]["status"] == "ok" and body["parts"]["rest_lambdas"]["restarts"] == 1
        assert body["parts"]["rest_lambdas"]["pid"] != killed
        assert any(f"rest-lambdas (pid {killed}) was killed by SIGKILL: restarting it" in line for line in stack.output)
        # PayPal finished the capture without its caller: its webhook completes the purchase.
        buyer.wait_order(created["order_id"], "paid", timeout=60)
        assert requests.get(stack.api("events/"), timeout=TIMEOUT).status_code == 200


def test_losing_moto_stops_the_stack_with_one_line_and_no_traceback():
    with running_stack() as stack:
        moto = part_pid(stack, "moto")
        os.kill(moto, signal.SIGKILL)
        assert stack.process.wait(timeout=30) == 1
        time.sleep(0.5)  # the output pump
        output = list(stack.output)
        assert [line for line in output if line.startswith(f"moto-server (pid {moto}) was killed by SIGKILL")]
        assert not [line for line in output if "Traceback" in line], output


def test_a_slow_paypal_call_does_not_hold_up_other_requests(stack, quiet_paypal):
    buyer, created, execute, answers = executing_slowly(stack, quiet_paypal, 6)
    assert health(stack)[0] == 200
    assert requests.get(stack.api("events/"), timeout=TIMEOUT).status_code == 200
    assert execute.is_alive(), "the slow capture finished before the other requests were answered"
    execute.join(timeout=30)
    assert answers[0].status_code == 200, answers[0].text
    buyer.wait_order(created["order_id"], "paid")


def test_pollers_ride_out_an_endpoint_outage_and_later_purchases_and_refunds_complete(tmp_path):
    from local.moto import MotoProcess

    port = free_port()
    state = tmp_path / "moto.pickle"
    moto = MotoProcess(state_file=state)
    endpoint = moto.start(port=port)
    try:
        with running_stack(env={"AWS_ENDPOINT_URL": endpoint}) as stack:
            showtime = demo_showtime(stack)
            buyer = Buyer(stack)
            paid = buyer.buy(showtime, free_seats(stack, showtime, 2))

            moto.stop()  # the endpoint goes away (its state kept in the snapshot)
            wait_until(lambda: health(stack)[0] == 503, what="health to notice", timeout=SLOW)
            body = health(stack)[1]
            assert body["checks"] == {"tables": "unreachable"}
            time.sleep(6)
            moto = MotoProcess(state_file=state)
            moto.start(port=port)
            wait_until(lambda: health(stack)[0] == 200, what="health to recover", timeout=SLOW)

            later = buyer.buy(showtime, free_seats(stack, showtime, 1))
            assert later["status"] == "paid"
            refund = buyer.refund(paid["order_id"])
            assert refund.status_code == 202, refund.text
            buyer.wait_order(paid["order_id"], "refunded")
    finally:
        moto.stop()


def test_a_restart_keeps_users_sessions_orders_and_refundable_captures(tmp_path):
    folder = {"LOCAL_STATE_DIR": str(tmp_path / "state")}
    with running_stack(env=folder) as stack:
        showtime = demo_showtime(stack)
        buyer = Buyer(stack)
        seats = free_seats(stack, showtime, 2)
        paid = buyer.buy(showtime, seats)
    with running_stack(env=folder) as stack:
        again = Buyer(stack, buyer.user)  # the same tokens, issued before the restart
        me = again.call("GET", "auth/me/")
        assert me.status_code == 200, me.text
        assert stack.login(buyer.user["email"], buyer.user["password"])["access"]
        orders = again.call("GET", "orders/").json()["results"]
        assert [(o["order_id"], o["status"]) for o in orders] == [(paid["order_id"], "paid")]
        refund = again.refund(paid["order_id"])
        assert refund.status_code == 202, refund.text
        again.wait_order(paid["order_id"], "refunded")
        listing = payflow.tickets(stack, showtime)
        assert {listing[t]["status"] for t in seats} == {"available"}


def test_a_second_stack_on_the_same_data_folder_refuses_to_start(tmp_path):
    folder = {"LOCAL_STATE_DIR": str(tmp_path / "state")}
    with running_stack(env=folder):
        with pytest.raises(RuntimeError, match="is in use by pid"):
            with running_stack(env=folder):
                pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("to_group", [False, True], ids=["to-the-stack", "to-its-process-group"])
def test_sigterm_in_the_middle_of_use_stops_every_part_quietly_with_status_0(to_group):
    with running_stack(env={"SWEEP_INTERVAL_SECONDS": "1"}) as stack:
        assert stack.ready_line.startswith(f"ready: open {stack.base_url}/ "), stack.ready_line
        showtime = demo_showtime(stack)
        buyer = Buyer(stack)
        seats = free_seats(stack, showtime, 3)
        viewer = Buyer(stack).room(showtime)  # a socket open: its $disconnect runs during the stop
        try:
            buyer.buy(showtime, seats[:1])
            approved(buyer, showtime, seats[1:3])  # a checkout in flight, the pollers and the sweeper busy
            children = [part_pid(stack, "moto"), part_pid(stack, "event_sources")]
            if to_group:
                os.killpg(stack.process.pid, signal.SIGTERM)  # what a process manager or `kill -- -PGID` does
            else:
                stack.process.send_signal(signal.SIGTERM)
            assert stack.process.wait(timeout=30) == 0
        finally:
            viewer.close()
        time.sleep(0.5)  # the output pump
        output = list(stack.output)
        after_ready = output[output.index(stack.ready_line) + 1 :]
        assert after_ready == ["stopped"], output
        assert not [pid for pid in children if _alive(pid)]
