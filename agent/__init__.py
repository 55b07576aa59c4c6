"""The clients that feed a clusterwatch server: the agent beside each real node
(``sidecar.py``), the cluster simulator (``simulate.py``), their small RESP client
(``respclient.py``) and their command line (``cli.py``).

They speak to a server over the wire only: they import ``resp/`` and ``cluster/``'s message
schema, never ``server/`` or ``commands/`` (``tests/test_architecture.py``).
"""
