import threading
import time

import pytest
import torch

from uvigu import Cancelled
from uvigu.studio.jobs import JobQueue, OutOfMemory, ProgressEvent, StudioBusy, one_torch_thread


@pytest.fixture
def jobs():
    queue = JobQueue(max_size=64, max_per_owner=64)
    yield queue
    queue.close(timeout=5)


def test_many_jobs_submitted_at_once_all_run_one_at_a_time_in_order(jobs):
    running, peak, order = [0], [0], []
    lock = threading.Lock()

    def work(n):
        def run(job):
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            time.sleep(0.002)
            with lock:
                running[0] -= 1
                order.append(n)
            return n * n
        return run

    submitted = [jobs.submit("owner", work(n)) for n in range(40)]
    assert [job.result(timeout=10) for job in submitted] == [n * n for n in range(40)]
    assert order == list(range(40))
    assert peak[0] == 1
    assert len(jobs) == 0


def test_submissions_from_many_threads_are_none_lost(jobs):
    results, lock = [], threading.Lock()

    def client(n):
        job = jobs.submit(f"owner{n % 3}", lambda job, n=n: n)
        value = job.result(timeout=10)
        with lock:
            results.append(value)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == list(range(30))


def test_a_failing_job_reports_its_error_and_the_worker_keeps_going(jobs):
    def boom(job):
        raise RuntimeError("kaput")

    failed = jobs.submit("a", boom)
    after = jobs.submit("a", lambda job: "still alive")
    with pytest.raises(RuntimeError, match="kaput"):
        failed.result(timeout=5)
    assert after.result(timeout=5) == "still alive"


@pytest.mark.parametrize("error", [torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
                                   MemoryError()])
def test_running_out_of_memory_is_reported_as_such(jobs, error):
    def big(job):
        raise error

    with pytest.raises(OutOfMemory) as raised:
        jobs.submit("a", big).result(timeout=5)
    assert raised.value.__cause__ is error  # the original, for the log's traceback
    assert jobs.submit("a", lambda job: "still alive").result(timeout=5) == "still alive"


def test_cancel_stops_a_running_job_at_its_next_step_and_drops_queued_ones(jobs):
    started, steps_done = threading.Event(), []

    def long(job):
        for i in range(1000):
            started.set()
            time.sleep(0.005)
            steps_done.append(i)
            job.report(ProgressEvent("stage", i, 1000))
        return "finished"

    running = jobs.submit("me", long)
    queued = jobs.submit("me", lambda job: "never")
    other = jobs.submit("someone else", lambda job: "runs")
    assert started.wait(5)
    assert jobs.cancel("me") == 2
    with pytest.raises(Cancelled):
        running.result(timeout=5)
    with pytest.raises(Cancelled):
        queued.result(timeout=5)
    assert other.result(timeout=5) == "runs"
    assert len(steps_done) < 1000


def test_progress_events_stream_to_the_submitter(jobs):
    def work(job):
        for i in range(3):
            job.report(ProgressEvent("Generating video", i, 3, text=None))
        return "ok"

    job = jobs.submit("a", work)
    events = list(job.events())
    assert [(e.stage, e.index, e.num_steps) for e in events] == [("Generating video", i, 3) for i in range(3)]
    assert job.result() == "ok"


def test_the_queue_is_bounded_and_says_it_is_busy():
    gate = threading.Event()
    queue = JobQueue(max_size=2, max_per_owner=2)
    try:
        first = queue.submit("a", lambda job: gate.wait(5))
        queue.submit("b", lambda job: None)
        with pytest.raises(StudioBusy, match="busy"):
            queue.submit("c", lambda job: None)
        gate.set()
        first.result(timeout=5)
    finally:
        gate.set()
        queue.close(timeout=5)


def test_one_owner_cannot_fill_the_queue():
    gate = threading.Event()
    queue = JobQueue(max_size=10, max_per_owner=1)
    try:
        queue.submit("a", lambda job: gate.wait(5))
        with pytest.raises(StudioBusy, match="already have 1 unfinished"):
            queue.submit("a", lambda job: None)
        assert queue.submit("b", lambda job: "b").owner == "b"
    finally:
        gate.set()
        queue.close(timeout=5)


def test_work_inside_one_torch_thread_runs_on_one_and_the_worker_keeps_the_process_threads(jobs):
    threads = torch.get_num_threads()
    with pytest.raises(RuntimeError, match="during the load"):
        with one_torch_thread():
            assert torch.get_num_threads() == 1
            raise RuntimeError("during the load")
    assert torch.get_num_threads() == threads  # put back, also after an error
    with one_torch_thread():
        pass
    assert jobs.submit("a", lambda job: torch.get_num_threads()).result() == threads
