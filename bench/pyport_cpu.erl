%% CPU time (user + system) of OS processes, for the benches' CPU budget
%% per task: the sum over a process's threads of the kernel's runtime in
%% /proc/<pid>/task/<tid>/schedstat (ns; /proc/<pid>/stat counts the same
%% time in 10 ms units, too coarse for a batch of tasks of a few us each).
%%
%% The files are read by a small helper process, not by this node: read
%% from the node, some 30 files (one per runtime thread) cost it 3-6 ms of
%% CPU per reading on dirty I/O schedulers, which would be counted as the
%% node's own. A reading here costs the node one port write and one
%% message, and the helper reads while the node waits.
-module(pyport_cpu).

%% API.
-export([start/0]).
-export([stop/1]).
-export([read/2]).

-opaque meter() :: port().
-export_type([meter/0]).

-define(HELPER, "
import os, sys
def ns(pid):
    d = '/proc/%s/task' % pid
    total = 0
    try:
        tids = os.listdir(d)
    except OSError:
        return -1
    for tid in tids:
        try:
            with open('%s/%s/schedstat' % (d, tid)) as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total
for line in sys.stdin:
    sys.stdout.write(' '.join(str(ns(p)) for p in line.split()) + '\\n')
    sys.stdout.flush()
").

%% API.

-spec start() -> meter().
start() ->
    Python = os:find_executable("python3"),
    Python =/= false orelse error({not_found, python3}),
    open_port({spawn_executable, Python},
              [{args, ["-S", "-c", ?HELPER]}, {line, 4096}, binary, use_stdio]).

-spec stop(meter()) -> ok.
stop(Meter) ->
    true = port_close(Meter),
    ok.

%% CPU so far of each process, in us, in the order given (`self` is this
%% node); a process that is gone reads as 0.
-spec read(meter(), [self | integer()]) -> [float()].
read(Meter, Pids) ->
    Line = lists:join(" ", [case P of
                                self -> os:getpid();
                                _ -> integer_to_list(P)
                            end || P <- Pids]),
    true = port_command(Meter, [Line, $\n]),
    receive
        {Meter, {data, {eol, Reply}}} ->
            [max(0, binary_to_integer(N)) / 1000 || N <- binary:split(Reply, <<" ">>, [global])]
    after 10000 ->
        error(cpu_meter_timeout)
    end.
