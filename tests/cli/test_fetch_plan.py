"""How `hallmark pull` cuts a version into Range GETs (client/hallmark/fetch.py `Downloader._plan`):
with files enough for every worker to take whole ones, each file is one run (hashed in order as it
arrives, never read back for the whole-file hash); with fewer, files are cut so every worker gets
several runs. A run never exceeds MAX_RUN_SEGMENTS."""

from __future__ import annotations

from hallmark import fetch

SEG = 1024 * 1024


def plan(tmp_path, sizes: list[int], workers: int) -> list[tuple[str, int, int]]:
    files = [fetch.Wanted(f"f{n}.bin", size, "0" * 64) for n, size in enumerate(sizes)]
    downloader = fetch.Downloader(
        endpoint="http://127.0.0.1:1", token="t", repo="a/b", commit="c" * 40, files=files, folder=tmp_path / "dir",
        segment_size=SEG, workers=workers,
    )
    return [(run.file.spec.path, run.first, run.last) for run in downloader._plan()]


def test_files_enough_for_every_worker_are_fetched_whole_one_run_each(tmp_path):
    runs = plan(tmp_path, [16 * SEG] * 4, workers=2)
    assert runs == [(f"f{n}.bin", 0, 15) for n in range(4)]


def test_fewer_files_are_cut_so_every_worker_gets_several_runs(tmp_path):
    runs = plan(tmp_path, [16 * SEG] * 2, workers=2)
    assert len(runs) == 8 and all(last - first + 1 == 4 for _, first, last in runs)
    assert {path for path, _, _ in runs} == {"f0.bin", "f1.bin"}


def test_a_run_never_exceeds_the_bound_even_for_a_huge_file(tmp_path):
    runs = plan(tmp_path, [200 * SEG] * 4 + [SEG], workers=2)
    assert max(last - first + 1 for _, first, last in runs) == fetch.MAX_RUN_SEGMENTS
    covered = {}
    for path, first, last in runs:
        covered.setdefault(path, set()).update(range(first, last + 1))
    assert covered == {**{f"f{n}.bin": set(range(200)) for n in range(4)}, "f4.bin": {0}}
