%% The cancel grace. A task Erlang cancelled (deadline passed, await timed
%% out, caller died) stays in its loop's pending table as `{Ref,
%% {cancelled, KillAt}}` until Python answers; one still there at KillAt
%% (now + cancel_grace_ms) means Python ignores the cancel, spins, or is
%% stuck in a C call. This module marks such entries, keeps the worker's
%% one timer for the earliest KillAt, and tells which are overdue.
%%
%% Overdue is judged by progress, not per cancel: while the port keeps
%% sending packets (answering thousands of cancels after a mass caller
%% death, say) it is not stuck, and the judgement waits until it has been
%% silent for a whole grace period with a cancel overdue. A cancel that a
%% port making progress leaves unanswered for ?FORGET_GRACES grace periods
%% (a task that ignores it, or a cancel Python never got) costs that task
%% only: its entry is forgotten, so that it does not count against
%% max_pending forever.
-module(pyport_overdue).

%% API.
-export([mark/3]).
-export([arm/2]).
-export([check/3]).
-export([forget/3]).

-define(FORGET_GRACES, 10).

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

%% What the pending table holds now: no cancelled task; the time to judge
%% again (the earliest deadline, or, while the port is making progress,
%% one grace period after its last packet); or how many are overdue on a
%% port that has sent nothing for a grace period. LastOutput: when the
%% port last sent a packet (monotonic milliseconds).
-spec check(ets:tid(), integer(), non_neg_integer())
    -> none | {wait, integer()} | {overdue, pos_integer()}.
check(Pending, LastOutput, Grace) ->
    KillAts = ets:select(Pending, [{{'_', {cancelled, '$1'}}, [], ['$1']}]),
    Now = erlang:monotonic_time(millisecond),
    case [At || At <- KillAts, At =< Now] of
        [] when KillAts =:= [] -> none;
        [] -> {wait, lists:min(KillAts)};
        _ when LastOutput + Grace > Now -> {wait, LastOutput + Grace};
        Overdue -> {overdue, length(Overdue)}
    end.

%% Forgets the cancelled entries overdue by ?FORGET_GRACES grace periods
%% (their callers have long had their answer); returns how many.
-spec forget(ets:tid(), integer(), non_neg_integer()) -> non_neg_integer().
forget(Pending, Now, Grace) ->
    Cutoff = Now - ?FORGET_GRACES * max(Grace, 1),
    ets:select_delete(Pending, [{{'_', {cancelled, '$1'}}, [{'=<', '$1', Cutoff}], [true]}]).
