"""Which offers of one device may coexist: an episode's span. (Pure.)

A generator names the episode its offer describes by the offer's id (a planning block, a
charging session, a dishwasher load). A prediction for another episode is never a revision of
this one; two episodes of one device are offered side by side only when their spans do not
overlap, so one device never has two schedules for the same time.
"""

from __future__ import annotations

from protocol import FlexOffer, profile_window, start_window


def span(offer: FlexOffer) -> tuple[int, int]:
    """``[first, end)``: every moment at which a schedule of ``offer`` may run its device.

    Two episodes of one device whose spans overlap could each get a schedule for the same
    time; the agent therefore offers an episode only when its span overlaps no other episode
    the device still offers or is committed to."""
    first, _ = start_window(offer)
    end = max(profile_window(offer, p)[1] + p.n_slots * offer.resolution_s for p in offer.profiles)
    return first, end


def overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]
