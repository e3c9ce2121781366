%% OS-process helpers for the fault suites: process trees from /proc,
%% waiting for processes to be gone, memory and descriptor counts, and
%% clean-up of whatever a case left behind.
-module(pyport_ct_os).

-export([descendants/1]).
-export([tree/1]).
-export([await_gone/2]).
-export([alive/1]).
-export([kill/1]).
-export([rss_kb/1]).
-export([fd_count/1]).
-export([sigkill/1]).

%% Every live descendant of OsPid (children, their children, ...).
-spec descendants(integer()) -> [integer()].
descendants(OsPid) ->
    lists:append([[C | descendants(C)] || C <- children(OsPid)]).

%% OsPid and its descendants.
-spec tree(integer()) -> [integer()].
tree(OsPid) ->
    [OsPid | descendants(OsPid)].

%% Polls until none of Pids runs (zombies count as gone); fails the case
%% with the survivors after Timeout ms.
-spec await_gone([integer()], non_neg_integer()) -> ok.
await_gone(Pids, Timeout) ->
    Deadline = erlang:monotonic_time(millisecond) + Timeout,
    await_gone_until(Pids, Deadline).

await_gone_until(Pids, Deadline) ->
    case [P || P <- Pids, alive(P)] of
        [] ->
            ok;
        Alive ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true ->
                    Survivors = [{P, comm(P)} || P <- Alive],
                    kill(Alive),
                    ct:fail({processes_survived, Survivors});
                false ->
                    timer:sleep(20),
                    await_gone_until(Alive, Deadline)
            end
    end.

-spec alive(integer()) -> boolean().
alive(OsPid) ->
    pyport_ct:os_pid_alive(OsPid).

%% SIGKILL to each live pid in Pids (test clean-up; errors ignored).
-spec kill([integer()]) -> ok.
kill([]) ->
    ok;
kill(Pids) ->
    _ = os:cmd("kill -9 " ++ lists:join(" ", [integer_to_list(P) || P <- Pids])
               ++ " 2>/dev/null"),
    ok.

%% SIGKILL to one process, as a fault: the port (or a node) dies by signal.
-spec sigkill(integer()) -> ok.
sigkill(OsPid) ->
    _ = os:cmd("kill -9 " ++ integer_to_list(OsPid)),
    ok.

%% VmRSS in KiB, or undefined when the process is gone.
-spec rss_kb(integer()) -> non_neg_integer() | undefined.
rss_kb(OsPid) ->
    case file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/status") of
        {ok, Status} ->
            case re:run(Status, <<"VmRSS:\\s+(\\d+)">>, [{capture, all_but_first, binary}]) of
                {match, [Kb]} -> binary_to_integer(Kb);
                nomatch -> undefined
            end;
        {error, _} ->
            undefined
    end.

%% Open file descriptors of a process.
-spec fd_count(integer()) -> non_neg_integer() | undefined.
fd_count(OsPid) ->
    case file:list_dir("/proc/" ++ integer_to_list(OsPid) ++ "/fd") of
        {ok, Fds} -> length(Fds);
        {error, _} -> undefined
    end.

%% Internal.

children(OsPid) ->
    Dir = "/proc/" ++ integer_to_list(OsPid) ++ "/task",
    case file:list_dir(Dir) of
        {ok, Tids} ->
            lists:usort(
              lists:append(
                [case file:read_file(filename:join([Dir, T, "children"])) of
                     {ok, Bin} -> [binary_to_integer(C)
                                   || C <- binary:split(Bin, <<" ">>, [global, trim_all])];
                     {error, _} -> []
                 end || T <- Tids]));
        {error, _} ->
            []
    end.

comm(OsPid) ->
    case file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/cmdline") of
        {ok, Bin} -> binary:replace(Bin, <<0>>, <<" ">>, [global]);
        {error, _} -> gone
    end.
