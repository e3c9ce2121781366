%% The callbacks one loop runs now (Python's `erlang.call`/`async_call`,
%% py_callback:serve/5): at most `max_callbacks` at once, each known by its
%% CallId so that Python's `{call_cancel, CallId}` ends it.
%%
%% The table belongs to the loop's worker and goes with it; the runs
%% themselves (py_callback:run/3) monitor the worker and end with it. The
%% worker adds a run before it starts and the run removes itself as it
%% ends, so the table's size is the number of runs alive: the bound costs
%% no process and no message.
-module(pyport_callback_runs).

-export([new/1]).
-export([start/3]).
-export([cancel/2]).
-export([done/2]).

-record(runs, {table :: ets:tid(), max :: non_neg_integer()}).
-opaque runs() :: #runs{}.
-export_type([runs/0]).

%% What a run receives when Python gave up on its call.
-define(CANCEL, {?MODULE, cancel}).

%% A loop's empty table; called by its worker, which owns it.
-spec new(non_neg_integer()) -> runs().
new(Max) ->
    #runs{table = ets:new(pyport_callback_runs, [set, public, {write_concurrency, true}]),
          max = Max}.

%% Starts the run of CallId with Start() (which returns its pid) unless
%% max_callbacks runs are alive, or one for CallId is (Python's ids are
%% unique among its outstanding calls: a repeated one is forged).
-spec start(runs(), term(), fun(() -> pid()))
    -> ok | {error, {callback_limit, non_neg_integer()} | {duplicate_call_id, term()}}.
start(#runs{table = Table, max = Max}, CallId, Start) ->
    case ets:info(Table, size) >= Max of
        true ->
            {error, {callback_limit, Max}};
        false ->
            case ets:insert_new(Table, {CallId, starting}) of
                true ->
                    %% False when the run has already ended: nothing to track.
                    _ = ets:update_element(Table, CallId, {2, Start()}),
                    ok;
                false ->
                    {error, {duplicate_call_id, CallId}}
            end
    end.

%% Python stopped waiting for CallId (its task was cancelled or timed
%% out): its run kills the callback and ends, without an answer.
-spec cancel(runs(), term()) -> ok.
cancel(#runs{table = Table}, CallId) ->
    case ets:lookup(Table, CallId) of
        [{_, Pid}] when is_pid(Pid) -> Pid ! ?CANCEL, ok;
        _ -> ok
    end.

%% The run of CallId ends (called by the run itself). Its entry may still
%% say `starting` if the run ended before the worker recorded its pid.
-spec done(runs(), term()) -> ok.
done(#runs{table = Table}, CallId) ->
    Self = self(),
    try ets:select_delete(Table, [{{CallId, '$1'},
                                   [{'orelse', {'=:=', '$1', starting}, {'=:=', '$1', Self}}],
                                   [true]}]) of
        _ -> ok
    catch
        %% The worker is gone, and the table with it.
        error:badarg -> ok
    end.
