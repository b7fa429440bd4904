"""Open-model pacer: every request has an intended send time, independent of responses.

Why it looks like this:
- Sends that are due fire in batches on a ~1 ms tick. Sleeping per request does not work:
  uvloop returns at once from sleeps shorter than ~0.5 ms and the pacer would busy-spin.
- A rate change re-anchors the schedule: the next intended time lies within one gap at the
  new rate from now (Poisson: now + a fresh gap; uniform: what was left of the current gap,
  rescaled to the new rate, so sends follow the integral of the rate exactly, overdue ones
  staying due). No stale slots, no pre-held tokens, so it is in force within one gap.
- At most `max_in_flight` sends run at once. A due send that finds no free slot waits in
  a bounded line (about one second of arrivals) and starts when a slot frees, late; when the
  line is full it is dropped. Memory stays flat under a stalled target, and latency measured
  from the intended time (corrected) shows the waiting that raw latency hides.
- The lease deadline is checked on the same tick: past it nothing more is sent.
- An executor that can start a send synchronously (`Pusher.push`, e.g. the fast HTTP/1.1
  client with an idle connection) is driven without a task: no coroutine, task or future per
  send, the answer arrives as a callback (41 -> 23 Python calls per send, 3-30 % less CPU:
  docs/performance.md); anything it cannot take (no idle connection) goes the task way.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol, TypeAlias

from .plan import Arrival
from .recorder import Recorder, TargetRecorder

log = logging.getLogger(__name__)

TICK_S = 0.001
"""Firing period while sends are due more often than this."""
LATE_TOLERANCE_S = 0.010
"""A send starting later than this after its intended time counts as late."""
WAITING_SECONDS = 1.0
"""The waiting line holds at most this many seconds of arrivals (at the current rate)."""
MAX_WAITING = 100_000
"""Hard cap on the waiting line, whatever the rate."""
MAX_CATCH_UP_S = 1.0
"""If the loop was blocked longer than this, older due sends are dropped, not fired."""


class Sender(Protocol):
    """What the pacer needs from an executor (kar98k_loadpod.executors.Executor fits)."""

    async def send(self) -> str: ...

    async def close(self) -> None: ...


Token: TypeAlias = tuple["Slot", float, float, int]
"""What a pushed send hands back on completion: (slot, start, intended, generation)."""
Done: TypeAlias = Callable[[Token, str], None]


class Pusher(Protocol):
    """Optional executor fast path: start a send now, answer through a callback, no task."""

    def push(self, done: Done, token: Token) -> bool:
        """Start one send and return True, then call `done(token, outcome)` exactly once,
        never before `push` has returned; or return False, having started nothing."""
        ...


class Slot:
    """One target as the pacer sees it: its executor, weight, health and counters."""

    __slots__ = ("executor", "healthy", "in_flight", "name", "push", "retired", "stats", "weight")

    def __init__(self, name: str, executor: Sender, weight: float, stats: TargetRecorder) -> None:
        self.name = name
        self.executor = executor
        push: Callable[[Done, Token], bool] | None = getattr(executor, "push", None)
        self.push = push
        self.weight = weight
        self.stats = stats
        self.healthy = True
        self.in_flight = 0
        self.retired = False


class Chooser:
    """Weighted target choice; an unhealthy pick is counted, then re-drawn among healthy ones."""

    __slots__ = (
        "_all",
        "_all_cum",
        "_all_total",
        "_healthy",
        "_healthy_cum",
        "_healthy_total",
        "only",
    )

    def __init__(self, slots: Sequence[Slot]) -> None:
        self._all, self._all_cum, self._all_total = _cumulative(slots)
        self._healthy, self._healthy_cum, self._healthy_total = _cumulative(
            [s for s in slots if s.healthy]
        )
        # The one possible pick, when there is no choice to make (one healthy target): the
        # pacer then skips `choose` and the random draw.
        only = self._all[0] if len(self._all) == 1 else None
        self.only = only if only is not None and only.healthy else None

    def choose(self, rng: random.Random) -> Slot | None:
        slots = self._all
        if not slots:
            return None
        if len(slots) == 1:
            slot = slots[0]
        else:
            i = bisect_right(self._all_cum, rng.random() * self._all_total)
            slot = slots[min(i, len(slots) - 1)]
        if slot.healthy:
            return slot
        slot.stats.skipped_unhealthy += 1
        healthy = self._healthy
        if not healthy:
            return None
        i = bisect_right(self._healthy_cum, rng.random() * self._healthy_total)
        return healthy[min(i, len(healthy) - 1)]


def _cumulative(slots: Sequence[Slot]) -> tuple[list[Slot], list[float], float]:
    chosen = [s for s in slots if s.weight > 0]
    cum: list[float] = []
    total = 0.0
    for slot in chosen:
        total += slot.weight
        cum.append(total)
    return chosen, cum, total


class Pacer:
    """Turns (rate, arrival, targets, lease deadline) into paced sends. Owns the slots it gets."""

    def __init__(
        self,
        recorder: Recorder,
        *,
        on_lease_expired: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._rec = recorder
        self._on_lease_expired = on_lease_expired
        self._clock = clock
        self._rate = 0.0
        self._arrival = Arrival.POISSON
        self._seed: int | None = None
        self._arrivals = random.Random()
        self._choices = random.Random()
        self._max_in_flight = 1
        self._slots: list[Slot] = []
        self._chooser = Chooser([])
        self._next = math.inf
        self._last = -math.inf
        self._deadline = math.inf
        self._waiting: deque[tuple[Slot, float]] = deque()
        self._waiting_cap = 1
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._generation = 0  # bumped when in-flight sends are abandoned (see cancel_in_flight)
        self._retiring: set[Slot] = set()  # retired slots still waiting for answers
        self._closers: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._wake_fut: asyncio.Future[None] | None = None
        self._runner: asyncio.Task[None] | None = None

    # --- control (called from the API / runtime) -------------------------------------------

    @property
    def rate(self) -> float:
        """The rate in force right now (0 after lease expiry or halt)."""
        return self._rate

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def slots(self) -> list[Slot]:
        return list(self._slots)

    def start(self) -> None:
        if self._runner is None:
            self._runner = asyncio.get_running_loop().create_task(self._run(), name="pacer")

    def configure(
        self,
        *,
        rate: float,
        arrival: Arrival,
        seed: int | None,
        max_in_flight: int,
        slots: list[Slot],
        lease_seconds: float,
    ) -> None:
        """Apply a plan at once. Slots not in `slots` retire: closed after their in-flight."""
        now = self._clock()
        if seed is None or seed != self._seed or not self._slots:
            self._arrivals = random.Random(seed)
            self._choices = random.Random(None if seed is None else f"{seed}/targets")
        self._seed = seed
        old, self._slots = self._slots, list(slots)
        self._retire([s for s in old if s not in slots])
        self._chooser = Chooser(self._slots)
        self._max_in_flight = max_in_flight
        self._deadline = now + lease_seconds
        if rate != self._rate or arrival != self._arrival:
            previous = self._rate if arrival == self._arrival else 0.0
            self._rate = rate
            self._arrival = arrival
            self._next = self._anchor(now, previous) if rate > 0 else math.inf
            if rate <= 0:
                self._drop_waiting()
        self._waiting_cap = max(1, min(MAX_WAITING, math.ceil(rate * WAITING_SECONDS)))
        while len(self._waiting) > self._waiting_cap:
            self._waiting.pop()
            self._rec.dropped += 1
            self._rec.late += 1
        while self._waiting and self._in_flight < max_in_flight:
            self._launch(*self._waiting.popleft())
        self._wake()

    def set_healths(self, states: dict[str, bool]) -> None:
        """`set_health` for many targets at once (one pass over the slots)."""
        changed = False
        for slot in self._slots:
            healthy = states.get(slot.name)
            if healthy is not None and slot.healthy != healthy:
                slot.healthy = healthy
                slot.stats.healthy = healthy
                changed = True
        if changed:
            self._chooser = Chooser(self._slots)

    def set_health(self, name: str, healthy: bool) -> None:
        changed = False
        for slot in self._slots:
            if slot.name == name and slot.healthy != healthy:
                slot.healthy = healthy
                slot.stats.healthy = healthy
                changed = True
        if changed:
            self._chooser = Chooser(self._slots)

    def halt(self) -> None:
        """Stop new sends now (drain); in-flight sends finish."""
        self._rate = 0.0
        self._next = math.inf
        self._deadline = math.inf
        self._drop_waiting()
        self._wake()

    def clear_slots(self) -> None:
        """Forget every target (after a drain); executors close once their sends end."""
        old, self._slots = self._slots, []
        self._retire(old)
        self._chooser = Chooser([])

    async def wait_idle(self, within: float) -> bool:
        """True when nothing is in flight (or waiting) before `within` seconds pass."""
        try:
            async with asyncio.timeout(within):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def cancel_in_flight(self) -> int:
        """Abandon in-flight sends (drain timeout); returns how many were cancelled.

        Task sends are cancelled; pushed sends have no task, so they are forgotten: their
        counts are cleared now and their late answers (or the error their executor's close
        gives them) are ignored, like a cancelled task's, by the generation check.
        """
        self._drop_waiting()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        pushed = self._in_flight
        self._generation += 1
        self._in_flight = 0
        for slot in [*self._slots, *self._retiring]:
            slot.in_flight = 0
        live = {s.name for s in self._slots}
        for slot in list(self._retiring):
            self._close_slot(slot, live)
        self._idle.set()
        return len(tasks) + pushed

    async def close(self) -> None:
        """Stop the loop, cancel sends and close every executor."""
        self.halt()
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)
            self._runner = None
        await self.cancel_in_flight()
        self.clear_slots()
        if self._closers:
            await asyncio.gather(*self._closers, return_exceptions=True)

    # --- the loop ------------------------------------------------------------------------------

    def _anchor(self, now: float, previous: float) -> float:
        """The first intended time at a new rate: within one new gap of now.

        Poisson draws a fresh gap from now (memoryless, so exact). Uniform rescales what is
        left of the gap in progress (`previous` is the uniform rate it was drawn at, 0 if
        none): the time still to wait at the old rate becomes the same share of a gap at the
        new one. A controller re-pushes a varying rate every 100 ms: restarting the gap at
        every push would postpone sends, and clamping it to now would drop the share already
        waited (a soak measured ~1 % too few sends); a send overdue when the plan lands (a
        busy loop) stays overdue and fires at once. From a stop (no gap in progress) the next
        send is one gap after the last, at the earliest now.
        """
        if self._arrival is Arrival.UNIFORM:
            if previous > 0 and self._next != math.inf:
                return now + (self._next - now) * previous / self._rate
            return max(now, self._last + 1.0 / self._rate)
        return now + self._arrivals.expovariate(self._rate)

    async def _run(self) -> None:
        while True:
            try:
                await self._loop()
            except Exception:  # a bug must not end pacing silently; say so and go on
                log.exception("pacer loop failed; restarting")
                await asyncio.sleep(0.1)

    async def _loop(self) -> None:
        clock = self._clock
        counter = self._rec.sent
        while True:
            counter.roll()
            now = clock()
            if now >= self._deadline:
                self._expire()
                continue
            nxt = self._next
            if nxt <= now:
                if now - nxt > MAX_CATCH_UP_S:
                    missed = int((now - nxt) * self._rate)
                    self._rec.dropped += missed
                    self._rec.late += missed
                    nxt = now
                fire = self._fire
                last = nxt
                if self._arrival is Arrival.UNIFORM:
                    gap = 1.0 / self._rate
                    while nxt <= now:
                        fire(nxt)
                        last = nxt
                        nxt += gap
                else:
                    draw, rate = self._arrivals.expovariate, self._rate
                    while nxt <= now:
                        fire(nxt)
                        last = nxt
                        nxt += draw(rate)
                self._last = last
                self._next = nxt
            until = min(nxt, self._deadline)
            await self._sleep(None if until == math.inf else max(until - clock(), TICK_S))

    def _fire(self, intended: float) -> None:
        chooser = self._chooser
        slot = chooser.only or chooser.choose(self._choices)
        if slot is None:
            return
        if self._in_flight < self._max_in_flight:
            self._launch(slot, intended)
        elif len(self._waiting) < self._waiting_cap:
            self._waiting.append((slot, intended))
        else:
            self._rec.dropped += 1
            self._rec.late += 1

    def _launch(self, slot: Slot, intended: float) -> None:
        if self._in_flight == 0:
            self._idle.clear()
        self._in_flight += 1
        slot.in_flight += 1
        self._rec.sent.count += 1
        push = slot.push
        if push is not None:
            start = self._clock()
            if push(self._answered, (slot, start, intended, self._generation)):
                if start - intended > LATE_TOLERANCE_S:
                    self._rec.late += 1
                return
        task = asyncio.get_running_loop().create_task(self._send(slot, intended))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _answered(self, token: Token, outcome: str) -> None:
        """A pushed send ended: record it, free its place, start a waiting send in it."""
        slot, start, intended, generation = token
        if generation != self._generation:
            return  # abandoned by cancel_in_flight, already uncounted
        try:
            end = self._clock()
            slot.stats.record(outcome, end - start, end - intended)
        except Exception:  # called from the executor's protocol code: never raise into it
            log.exception("recording an answer failed", extra={"kv": {"target": slot.name}})
        slot.in_flight -= 1
        if slot.retired and slot.in_flight == 0:
            self._close_slot(slot, {s.name for s in self._slots})
        self._in_flight -= 1
        if self._waiting:
            self._launch(*self._waiting.popleft())
        elif self._in_flight == 0:
            self._idle.set()

    async def _send(self, slot: Slot, intended: float) -> None:
        """Run one send, then keep serving the waiting line while it is not empty."""
        clock = self._clock
        rec = self._rec
        try:
            while True:
                try:
                    start = clock()
                    if start - intended > LATE_TOLERANCE_S:
                        rec.late += 1
                    try:
                        outcome = await slot.executor.send()
                    except Exception:  # executors never raise; a bug must not skew counts
                        log.exception("executor raised", extra={"kv": {"target": slot.name}})
                        outcome = "error"
                    end = clock()
                    slot.stats.record(outcome, end - start, end - intended)
                finally:
                    slot.in_flight -= 1
                    if slot.retired and slot.in_flight == 0:
                        self._close_slot(slot, {s.name for s in self._slots})
                if not self._waiting:
                    return
                slot, intended = self._waiting.popleft()
                slot.in_flight += 1
                rec.sent.count += 1
        finally:
            self._in_flight -= 1
            if self._in_flight == 0 and not self._waiting:
                self._idle.set()

    def _expire(self) -> None:
        self._rate = 0.0
        self._next = math.inf
        self._deadline = math.inf
        self._drop_waiting()
        if self._on_lease_expired is not None:
            self._on_lease_expired()

    def _drop_waiting(self) -> None:
        if self._waiting:
            self._rec.dropped += len(self._waiting)
            self._rec.late += len(self._waiting)
            self._waiting.clear()
        if self._in_flight == 0:
            self._idle.set()

    def _retire(self, slots: Sequence[Slot]) -> None:
        live = {s.name for s in self._slots}
        for slot in slots:
            if slot.retired:
                continue
            slot.retired = True
            if slot.in_flight == 0:
                self._close_slot(slot, live)
            else:
                self._retiring.add(slot)
        if self._waiting and any(s.retired for s, _ in self._waiting):
            kept = deque((s, t) for s, t in self._waiting if not s.retired)
            self._rec.dropped += len(self._waiting) - len(kept)
            self._rec.late += len(self._waiting) - len(kept)
            self._waiting = kept

    def _close_slot(self, slot: Slot, live: set[str]) -> None:
        self._retiring.discard(slot)
        # Nothing records into this slot any more; its counters may be folded unless the
        # same name is back in the plan (`live`: a new slot sharing the recorder).
        if slot.name not in live:
            self._rec.retire(slot.name)
        task = asyncio.get_running_loop().create_task(self._close_executor(slot))
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)

    async def _close_executor(self, slot: Slot) -> None:
        try:
            await slot.executor.close()
        except Exception:
            log.exception("closing executor failed", extra={"kv": {"target": slot.name}})

    # --- sleeping that a plan change can cut short ---------------------------------------------

    async def _sleep(self, delay: float | None) -> None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._wake_fut = fut
        handle = None if delay is None else loop.call_later(delay, _resolve, fut)
        try:
            await fut
        finally:
            self._wake_fut = None
            if handle is not None:
                handle.cancel()

    def _wake(self) -> None:
        fut = self._wake_fut
        if fut is not None:
            _resolve(fut)


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
