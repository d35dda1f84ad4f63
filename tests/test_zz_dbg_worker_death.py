import time
from tests.test_worker_death import *  # noqa
from tests.test_worker_death import _stream_pages, _active

def test_dbg(rig, fleet_baseline):
    rig.fault("lansweeper", "slow", delay_ms=800)
    nx = rig.nexus()
    aid = nx.submit(nx.request_for(fleet=True))
    t = time.monotonic()
    for i in range(30):
        st = SnapshotStore(rig.redis()).state(aid, "lansweeper")
        print(round(time.monotonic()-t,2), st.status, st.pages, nx.get(aid, include_report=False)["status"], nx.get(aid, include_report=False)["progress"])
        time.sleep(0.5)
    print(rig.worker_logs()[-5000:])
