"""verify's own checks, one module per family.

* :mod:`.session`: identify-face and a first task, the setup every family starts from;
* :mod:`.valid`: ``valid_requests_accepted``;
* :mod:`.rules`: ``rule:<id>`` for every rule a request (or a media file) can break;
* :mod:`.time_rules`: the rules broken by time passing, through the mock's control API;
* :mod:`.lifecycle`: ``task_lifecycle``;
* :mod:`.units`: the documented units and formats of every answer;
* :mod:`.callbacks`: the callbacks a server sends to a receiver verify runs.

Each family is a function of a :class:`.base.Context` (the target, the report, the options).
"""
