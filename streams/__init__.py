"""Release-risk detection (issue 3): events -> person state -> findings -> alert events.

- :mod:`streams.state`: :class:`~streams.state.PersonState` and the pure, order-safe ``fold``.
- :mod:`streams.calendar`: working days and England & Wales bank holidays, in local time.
- :mod:`streams.rules`: one pure function per practice rule, registered in the catalogue.
- :mod:`streams.alerts`: the diff from findings to raised / updated / resolved alert events.
- :mod:`streams.person`: the table record and what happens on an event or a sweep.
- :mod:`streams.app`, :mod:`streams.agents`: the Faust wiring (agent, table, sweep timer).
- :mod:`streams.clock`: injectable time (wall, fixed, offset, event-time replay).
"""
