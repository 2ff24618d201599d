"""Development tooling, run from a checkout: the dev broker (:mod:`.broker`), the Apicurio launcher
(:mod:`.apicurio`), the registry stand-in (:mod:`.schema_registry`), the sandbox process helper, ``dev up|down``
(:mod:`.stack`) and ``attentive-connector demo`` (:mod:`.demo`).

Not in the wheel (pyproject ``[tool.setuptools.packages.find]`` excludes it): none of it works without the
checkout around it — the Makefile that fetches the Kafka and Apicurio jars into ``.cache/``, ``pom.xml``, the
shipped ``schemas/`` and ``config/`` — and a deployment has no use for a throwaway broker. An optional extra
could only add dependencies, not these modules, so exclusion is the honest split: ``pip install -e .`` (``make
setup``) maps the whole ``connector`` folder and still imports it; from the wheel, ``attentive-connector dev``
and ``demo`` print one line saying to run them from a checkout (:data:`connector.cli.DEV_TOOLING_MISSING`).
"""
