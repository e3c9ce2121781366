%% The cancel grace. A task Erlang cancelled (deadline passed, await timed
%% out, caller died) stays in its loop's pending table as `{Ref,
%% {cancelled, KillAt}}` until Python answers; one still there at KillAt
%% (now + cancel_grace_ms) means Python ignores the cancel, spins, or is
%% stuck in a C call. This module marks such entries, keeps the worker's
%% one timer for the earliest KillAt, and tells which are overdue.
-module(pyport_overdue).

%% API.
-export([mark/3]).
-export([arm/2]).
-export([check/1]).

%% {TimerRef, KillAt}, or none armed. The timer sends the worker
%% `{timeout, TimerRef, overdue_check}`.
-type timer() :: {reference(), integer()} | undefined.
-export_type([timer/0]).

%% API.

%% Marks task Ref cancelled, to be answered within Grace milliseconds;
%% returns the deadline, or false when the entry (or the whole table, with
%% its worker) is gone: the task has finished.
-spec mark(ets:tid(), reference(), non_neg_integer()) -> integer() | false.
mark(Pending, Ref, Grace) ->
    KillAt = erlang:monotonic_time(millisecond) + Grace,
    try ets:update_element(Pending, Ref, {2, {cancelled, KillAt}}) of
        true -> KillAt;
        false -> false
    catch
        error:badarg -> false
    end.

%% One timer for the earliest deadline: cancels come in deadline order
%% (now + the same grace), so this rarely re-arms. Call it in the worker.
-spec arm(integer(), timer()) -> timer().
arm(KillAt, {_, At} = Timer) when At =< KillAt ->
    Timer;
arm(KillAt, Timer) ->
    _ = case Timer of
            {TRef, _} -> erlang:cancel_timer(TRef, [{async, true}, {info, false}]);
            undefined -> ok
        end,
    {erlang:start_timer(KillAt, self(), overdue_check, [{abs, true}]), KillAt}.

%% What the pending table holds now: no cancelled task, the deadline of
%% the earliest one to wait for, or how many are overdue.
-spec check(ets:tid()) -> none | {wait, integer()} | {overdue, pos_integer()}.
check(Pending) ->
    KillAts = ets:select(Pending, [{{'_', {cancelled, '$1'}}, [], ['$1']}]),
    Now = erlang:monotonic_time(millisecond),
    case [At || At <- KillAts, At =< Now] of
        [] when KillAts =:= [] -> none;
        [] -> {wait, lists:min(KillAts)};
        Overdue -> {overdue, length(Overdue)}
    end.
