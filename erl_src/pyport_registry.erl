%% The loop registry as its readers see it: where a loop's current
%% `pyport_calls:loop()` is found, waiting for a loop that restarts, and
%% the list of pools. The registry tables are made and written by each
%% pool's server (py_event_loop_pool); this module only reads them and
%% talks to those servers, so that the core (pyport_calls) can find a
%% loop without depending on the public pool API.
%%
%% A pool's table holds `{Index, Loop | restarting}` per loop and
%% `{num_loops, N}`; the default pool's is named ?DEFAULT_TABLE, a named
%% pool's after the pool (whose loop ids are `{Pool, I}`).
-module(pyport_registry).

%% API.
-export([table/1]).
-export([server/1]).
-export([lookup/1]).
-export([num_loops/0]).
-export([num_loops/1]).
-export([loop_ids/0]).
-export([await_loop/4]).
-export([register_loop/2]).
-export([stopping/1]).
-export([register_pool/1]).
-export([loop_index/2]).
-export([caller_loop/1]).
-export([stats/1]).

-define(DEFAULT_TABLE, py_event_loops).
-define(DEFAULT_SERVER, py_event_loop_pool).
-define(POOLS_KEY, {?MODULE, pools}).

%% API.

%% The registry table of a pool (`default` or a named pool).
-spec table(atom()) -> atom().
table(default) -> ?DEFAULT_TABLE;
table(Pool) when is_atom(Pool) -> Pool.

%% The registered name of the server that owns a loop's registry.
-spec server(pyport_calls:loop_index()) -> atom().
server(Index) when is_integer(Index) -> ?DEFAULT_SERVER;
server({Pool, _}) -> Pool.

%% What a caller needs to submit to loop Index; `restarting` while that
%% loop's port restarts (see await_loop/3), error when there is no such
%% loop or its pool is not running.
-spec lookup(pyport_calls:loop_index()) -> {ok, pyport_calls:loop()} | restarting | error.
lookup(Index) when is_integer(Index) ->
    read(?DEFAULT_TABLE, Index);
lookup({Pool, Index}) when is_atom(Pool), is_integer(Index) ->
    read(Pool, Index);
lookup(_) ->
    error.

%% How many loops the default pool runs; undefined when it is not running.
-spec num_loops() -> pos_integer() | undefined.
num_loops() ->
    num_loops(default).

-spec num_loops(atom()) -> pos_integer() | undefined.
num_loops(Pool) ->
    try ets:lookup(table(Pool), num_loops) of
        [{num_loops, N}] -> N;
        [] -> undefined
    catch
        error:badarg -> undefined
    end.

%% Every loop id of every running pool (the default pool's first).
-spec loop_ids() -> [pyport_calls:loop_index()].
loop_ids() ->
    Default = case num_loops() of
                  undefined -> [];
                  N -> lists:seq(1, N)
              end,
    Default ++ [{Pool, I} || Pool <- persistent_term:get(?POOLS_KEY, []),
                             N <- [num_loops(Pool)], is_integer(N),
                             I <- lists:seq(1, N)].

%% Waits until loop Id has a worker other than Dead (the one a caller
%% found dead, or none), by Deadline (monotonic milliseconds), which is
%% Timeout from now (pyport_calls:after_ms/1). Beyond the loop's
%% max_pending waiters: overloaded. No such loop, or the pool stopping:
%% loop_unavailable.
-spec await_loop(pyport_calls:loop_index(), pid() | none, pyport_calls:deadline(), timeout())
    -> {ok, pyport_calls:loop()} | {error, timeout | overloaded | loop_unavailable}.
await_loop(Id, Dead, Deadline, Timeout) ->
    try
        gen_server:call(server(Id), {await_loop, local_index(Id), Dead, Deadline}, Timeout)
    catch
        %% A late reply is dropped: the call's alias is gone.
        exit:{timeout, _} -> {error, timeout};
        exit:_ -> {error, loop_unavailable}
    end.

%% A worker's fresh loop, written by its pool's server.
%% restart_loop/1 is about to stop loop Id's port: callers wait for the
%% fresh one from now on (await_loop/4) instead of writing to a port
%% that is stopping.
-spec stopping(pyport_calls:loop_index()) -> ok.
stopping(Id) ->
    try gen_server:call(server(Id), {stopping, local_index(Id)})
    catch exit:_ -> ok
    end.

-spec register_loop(pyport_calls:loop_index(), pyport_calls:loop()) -> ok.
register_loop(Id, Loop) ->
    gen_server:call(server(Id), {register_loop, Loop}).

%% A named pool is searchable by loop_ids/0 from its start on. Pools start
%% rarely, and a name once seen stays (a stopped pool has no table).
-spec register_pool(atom()) -> ok.
register_pool(Pool) ->
    Pools = persistent_term:get(?POOLS_KEY, []),
    case lists:member(Pool, Pools) of
        true -> ok;
        false -> persistent_term:put(?POOLS_KEY, [Pool | Pools])
    end.

%% The loop of pool Pool whose index the calling process's pid picks: every
%% task from one process goes to the same loop, different processes
%% spread over all loops. A pool not running gives its loop 1, which
%% submitting reports as loop_unavailable.
-spec caller_loop(atom()) -> pyport_calls:loop_index().
caller_loop(default) ->
    case num_loops() of
        undefined -> 1;
        N -> loop_index(self(), N)
    end;
caller_loop(Pool) ->
    case num_loops(Pool) of
        undefined -> {Pool, 1};
        N -> {Pool, loop_index(self(), N)}
    end.

-spec loop_index(pid(), pos_integer()) -> pos_integer().
loop_index(Pid, NumLoops) ->
    erlang:phash2(Pid, NumLoops) + 1.

%% The get_stats/0 figures of a pool, from its server; a pool that is not
%% running: the default pool's are all zero, a named pool's not_started.
-spec stats(atom()) -> map() | {error, not_started}.
stats(Pool) ->
    try
        gen_server:call(case Pool of
                            default -> ?DEFAULT_SERVER;
                            _ -> Pool
                        end, get_stats)
    catch
        exit:{noproc, _} when Pool =:= default ->
            #{num_loops => 0, supported => false, restarts => 0,
              pending => 0, loops => []};
        exit:{noproc, _} ->
            {error, not_started}
    end.

%% Internal.

read(Table, Index) ->
    try ets:lookup(Table, Index) of
        [{Index, restarting}] -> restarting;
        [{Index, Loop}] -> {ok, Loop};
        [] -> error
    catch
        %% No registry: the pool is not running.
        error:badarg -> error
    end.

local_index(Index) when is_integer(Index) -> Index;
local_index({_, Index}) -> Index.
