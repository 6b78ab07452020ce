"""Jobs and runs: the failures that send no error (nobody listening, jobs stuck, runs that
never finish), found on the channels and keys the TickStock systems already use.

model.py (runs, phases, jobs), events.py (what a processing event is), rules.py (the
trackers that decide stuck / stalled / failed / missed), store.py (their tables), reader.py
(the processing channels), watch.py (NUMSUB, the status keys, the clock), api.py and page.py.
"""
