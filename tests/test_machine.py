"""The bench's yardstick (clients.tools.machine): the steal share read from /proc/stat, and one core's encode time."""

from clients.tools.machine import CpuTimes, cpu_times, encode_ms


def test_steal_share_between_two_readings(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 0 50 800 10 0 0 40 0 0\ncpu0 50 0 25 400 5 0 0 20 0 0\nintr 1\n")
    first = cpu_times(stat)
    assert first == CpuTimes(total=1000, steal=40)
    stat.write_text("cpu  200 0 100 1500 10 0 0 190 0 0\n")
    # 1000 jiffies passed, 150 of them stolen
    assert abs(first.steal_share(cpu_times(stat)) - 0.15) < 1e-9
    assert first.steal_share(first) == 0.0


def test_an_old_kernel_without_a_steal_column_reads_none_stolen(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 0 50 800\n")
    assert cpu_times(stat) == CpuTimes(total=950, steal=0)


def test_this_machine_reads_and_encodes():
    now = cpu_times()
    assert now.total > 0 and 0 <= now.steal <= now.total
    ms = encode_ms(seconds=5.0, repeats=2)
    # One core of any machine this runs on encodes 5 s of tiny.en in well under 5 s, and takes some time to.
    assert 1.0 < ms < 5000.0
