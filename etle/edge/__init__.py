"""etle.edge: unattended live operation on an edge box (``etle edge --site site.yaml``).

:mod:`etle.edge.site` reads the site file; :mod:`etle.edge.supervisor` runs one worker process
per camera (:mod:`etle.edge.worker`) and restarts the ones that die; :mod:`etle.edge.metrics`
serves ``/health`` and Prometheus ``/metrics``; :mod:`etle.edge.publish` sends violation events
over MQTT and an optional webhook.  Live frames come from :class:`etle.ingest.live.LiveSource`.
"""

from etle.edge.site import SiteConfig, load_site

__all__ = ["SiteConfig", "load_site"]
