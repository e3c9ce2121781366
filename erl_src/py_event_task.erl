%% The task machinery shared by py_event_loop and py_event_loop_pool.
%%
%% The hot path stays out of the worker's mailbox: the caller encodes its
%% own packet and writes it to the port, and the worker only routes results
%% back. The task id is a monitor of the worker that is also a reply alias,
%% so one reference gives the caller its reply channel, notice of a dead
%% worker, and (via demonitor) a way to make sure a late reply is dropped
%% by the runtime instead of landing in its mailbox.
%%
%% Every wait is bounded by the caller's own deadline: waiting for a loop
%% that is restarting (py_event_loop_pool:await_loop/3), writing to a port
%% whose input pipe is full (a stopped or swamped Python), and waiting for
%% the result. Timeouts of any size are honoured, in chunks of the longest
%% `receive ... after` the runtime takes.
-module(py_event_task).

-include("py_event_loop.hrl").

%% API.
-export([run/6]).
-export([run/7]).
-export([create/5]).
-export([create/6]).
-export([failed/1]).
-export([await/2]).
-export([spawn/5]).
-export([spawn/6]).
-export([run_source/4]).
-export([submit_actor/3]).
-export([run_source/5]).

%% Pure helpers, exported for the API modules and their unit tests.
-export([check_call/4]).
-export([run_options/1]).
-export([check_timeout/1]).
-export([task_opts/1]).

%% Submission helpers shared with py_stream.
-export([live_loop/2]).
-export([write/3]).
-export([deadline/1]).
-export([after_ms/1]).

%% The default pool's loops are integers, a named pool's {Pool, I}.
-type loop_index() :: pos_integer() | {atom(), pos_integer()}.
-export_type([loop_index/0]).

%% What await/2 needs, kept in the caller's process dictionary under the
%% task reference until the task is awaited.
-define(KEY(Ref), {?MODULE, Ref}).

%% The longest `receive ... after` (and timer) the runtime accepts.
-define(MAX_AFTER, 4294967295).
%% create/spawn have no caller timeout of their own; this bounds how long
%% their submission may wait for a restarting loop or a full port.
-define(SUBMIT_MS, 5000).
%% How often a caller retries a port that is busy (its queue above the
%% high-water mark, i.e. Python is not reading).
-define(BUSY_RETRY_MS, 5).

%% API.

%% Submits a task and waits for its result. The deadline travels with the
%% task, so Python cancels it too; the caller never waits past it either.
-spec run(loop_index(), py_event_loop:py_name(), py_event_loop:py_name(),
          list(), py_event_loop:kwargs(), timeout())
    -> py_event_loop:result().
run(Index, Module, Func, Args, Kwargs, Timeout) ->
    run(Index, Module, Func, Args, Kwargs, Timeout, #{}).

%% run/6 with more task options (py_handle's `result`, `handle_args`).
-spec run(loop_index(), py_event_loop:py_name(), py_event_loop:py_name(),
          list(), py_event_loop:kwargs(), timeout(), map())
    -> py_event_loop:result().
run(Index, Module, Func, Args, Kwargs, Timeout, Extra) ->
    Deadline = deadline(Timeout),
    Opts = case task_opts(Timeout) of
               TaskOpts when map_size(Extra) =:= 0 -> TaskOpts;
               TaskOpts -> maps:merge(TaskOpts, Extra)
           end,
    case submit(Index, task(Module, Func, Args, Kwargs, Opts), Deadline) of
        {ok, Ref, Handle} ->
            wait(Ref, Handle, Deadline);
        {error, _} = Error ->
            Error
    end.

%% Submits a task whose result the caller later collects with await/2.
%% A submission that fails still returns a reference, whose await reports
%% the reason, so that callers have one place to handle errors.
-spec create(loop_index(), py_event_loop:py_name(), py_event_loop:py_name(),
             list(), py_event_loop:kwargs()) -> reference().
create(Index, Module, Func, Args, Kwargs) ->
    create(Index, Module, Func, Args, Kwargs, #{}).

%% create/5 with task options (py_handle's `result`, `handle_args`).
-spec create(loop_index(), py_event_loop:py_name(), py_event_loop:py_name(),
             list(), py_event_loop:kwargs(), map()) -> reference().
create(Index, Module, Func, Args, Kwargs, Opts) ->
    case submit(Index, task(Module, Func, Args, Kwargs, Opts),
                deadline(?SUBMIT_MS)) of
        {ok, Ref, Handle} ->
            put(?KEY(Ref), Handle),
            Ref;
        {error, Reason} ->
            failed(Reason)
    end.

%% A task reference whose await/2 gives `{error, Reason}`: a submission
%% refused before anything was sent.
-spec failed(term()) -> reference().
failed(Reason) ->
    Ref = make_ref(),
    put(?KEY(Ref), {failed, Reason}),
    Ref.

-spec await(reference(), timeout()) -> py_event_loop:result().
await(Ref, Timeout) ->
    case erase(?KEY(Ref)) of
        {task, #py_loop{}, _, _} = Handle ->
            wait(Ref, Handle, deadline(Timeout));
        {failed, Reason} ->
            {error, Reason};
        undefined ->
            %% Already awaited, or created by another process: the reply
            %% alias belongs to the creator, so waiting here could only
            %% ever time out.
            {error, unknown_task}
    end.

%% exec/eval: source text run in the loop's `__main__` namespace
%% (`{exec, Id, Code, Opts}` / `{eval, Id, Expr, Opts}`, Opts carrying the
%% caller and the deadline as for tasks, so that the watchdog interrupts
%% code still running then), waited for like run/6.
-spec run_source(loop_index(), exec | eval, binary(), timeout())
    -> py_event_loop:result().
run_source(Index, Kind, Code, Timeout) ->
    run_source(Index, Kind, Code, Timeout, #{}).

%% run_source/4 with more options for the port (eval's `locals` and
%% `none_atom`, py_compat:eval_opts/1).
-spec run_source(loop_index(), exec | eval, binary(), timeout(), map())
    -> py_event_loop:result().
run_source(Index, Kind, Code, Timeout, Extra) when Kind =:= exec; Kind =:= eval ->
    Deadline = deadline(Timeout),
    case submit(Index, {Kind, Code, maps:merge(task_opts(Timeout), Extra)}, Deadline) of
        {ok, Ref, Handle} -> wait(Ref, Handle, Deadline);
        {error, _} = Error -> Error
    end.

%% Starts an actor (py_actor): a pending entry like a task's, whose
%% caller is the proxy, so that the worker routes the actor's end and the
%% port's exit to it, and cancels the actor when the proxy dies.
-spec submit_actor(loop_index(), {actor, py_event_loop:py_name(), py_event_loop:py_name(),
                                  list(), py_event_loop:kwargs(), map()},
                   integer() | infinity)
    -> {ok, reference(), #py_loop{}} | {error, term()}.
submit_actor(Index, {actor, _, _, _, _, _} = Request, Deadline) ->
    case submit(Index, Request, Deadline) of
        {ok, Ref, {task, Loop, _T0, _Queue}} -> {ok, Ref, Loop};
        {error, _} = Error -> Error
    end.

%% Fire and forget: no pending entry, no monitor, and the task is not
%% cancelled when the caller exits (that is the point of spawning it).
-spec spawn(loop_index(), py_event_loop:py_name(), py_event_loop:py_name(),
            list(), py_event_loop:kwargs())
    -> ok | {error, loop_unavailable | overloaded | timeout
                    | {packet_too_large, pos_integer(), pos_integer()}}.
spawn(Index, Module, Func, Args, Kwargs) ->
    spawn(Index, Module, Func, Args, Kwargs, #{}).

%% spawn/5 with task options (py_handle's `handle_args`).
-spec spawn(loop_index(), py_event_loop:py_name(), py_event_loop:py_name(),
            list(), py_event_loop:kwargs(), map())
    -> ok | {error, loop_unavailable | overloaded | timeout
                    | {packet_too_large, pos_integer(), pos_integer()}}.
spawn(Index, Module, Func, Args, Kwargs, Extra) ->
    Deadline = deadline(?SUBMIT_MS),
    case live_loop(Index, Deadline) of
        {ok, #py_loop{port = Port, max_packet = Max}} ->
            Packet = pyport_wire:task(make_ref(), Module, Func, Args, Kwargs,
                                      Extra#{reply => false, caller => self()}),
            try write(Port, checked_size(Packet, Max), Deadline) of
                ok -> ok;
                busy -> {error, timeout}
            catch
                throw:{packet_too_large, _, _} = TooLarge -> {error, TooLarge};
                error:badarg -> {error, loop_unavailable}
            end;
        {error, _} = Error ->
            Error
    end.

%% Raises {badarg, {What, Value}} for the first argument that cannot be a
%% Python call target, at the caller's site rather than as a Python error
%% later.
-spec check_call(term(), term(), term(), term()) -> ok.
check_call(Module, Func, Args, Kwargs) ->
    check_name(module, Module),
    check_name(function, Func),
    is_proper_list(Args) orelse error({badarg, {args, Args}}),
    is_map(Kwargs) orelse error({badarg, {kwargs, Kwargs}}),
    ok.

%% The options of run/4. Unknown keys are an error, so a misspelt
%% `timeout` does not silently fall back to the default.
-spec run_options(term()) -> {timeout(), py_event_loop:kwargs()}.
run_options(Opts) when is_map(Opts) ->
    maps:foreach(
      fun(timeout, _) -> ok;
         (kwargs, _) -> ok;
         %% handle | auto | term, checked by py_handle:task_opts/4.
         (result, _) -> ok;
         %% checked by py_compat:none_atom_opt/2.
         (none_atom, _) -> ok;
         (Key, Value) -> error({badarg, {option, Key, Value}})
      end, Opts),
    Timeout = check_timeout(maps:get(timeout, Opts, 5000)),
    Kwargs = py_compat:kwargs(maps:get(kwargs, Opts, #{})),
    is_map(Kwargs) orelse error({badarg, {kwargs, Kwargs}}),
    {Timeout, Kwargs};
run_options(Opts) ->
    error({badarg, {options, Opts}}).

-spec check_timeout(term()) -> timeout().
check_timeout(infinity) -> infinity;
check_timeout(Ms) when is_integer(Ms), Ms >= 0 -> Ms;
check_timeout(Other) -> error({badarg, {timeout, Other}}).

%% The Opts element of the task packet for a caller waiting Timeout.
%% Beyond ?MAX_AFTER (49.7 days) Python gets no deadline of its own: the
%% caller still cancels the task when its (chunked) wait runs out.
-spec task_opts(timeout()) -> #{deadline_ms => non_neg_integer()}.
task_opts(infinity) -> #{};
task_opts(Ms) when Ms > ?MAX_AFTER -> #{};
task_opts(Ms) -> #{deadline_ms => Ms}.

%% Internal.

check_name(_, Name) when is_atom(Name); is_binary(Name) -> ok;
check_name(What, Name) -> error({badarg, {What, Name}}).

is_proper_list(List) when is_list(List) ->
    try length(List) of
        _ -> true
    catch
        error:badarg -> false
    end;
is_proper_list(_) ->
    false.

task(Module, Func, Args, Kwargs, Opts) ->
    %% The caller is what erlang.self() returns in the task.
    {task, Module, Func, Args, Kwargs, Opts#{caller => self()}}.

%% Submits Request to loop Index by Deadline. A loop that is restarting
%% is waited for; so is one whose worker turns out to be dead when the
%% caller writes (the registry still names it until the pool notices).
submit(Index, Request, Deadline) ->
    T0 = erlang:monotonic_time(microsecond),
    case live_loop(Index, Deadline) of
        {ok, #py_loop{worker = Worker} = Loop} ->
            case start_on(Loop, Request, Deadline) of
                {error, stale} ->
                    case py_event_loop_pool:await_loop(Index, Worker, Deadline) of
                        {ok, Fresh} -> timed(fresh(start_on(Fresh, Request, Deadline)), T0);
                        {error, _} = Error -> Error
                    end;
                Started ->
                    timed(Started, T0)
            end;
        {error, _} = Error ->
            Error
    end.

%% The handle of a started task carries its submission time and how long
%% it took the port to take it (py_ops_stats).
timed({ok, Ref, {task, Loop}}, T0) ->
    {ok, Ref, {task, Loop, T0, erlang:monotonic_time(microsecond) - T0}};
timed(Other, _) ->
    Other.

%% A loop that fails again right after its restart is not waited for twice.
fresh({error, stale}) -> {error, loop_unavailable};
fresh(Started) -> Started.

-spec live_loop(loop_index(), integer() | infinity)
    -> {ok, #py_loop{}} | {error, timeout | overloaded | loop_unavailable}.
live_loop(Index, Deadline) ->
    case py_event_loop_pool:lookup(Index) of
        {ok, Loop} -> {ok, Loop};
        restarting -> py_event_loop_pool:await_loop(Index, none, Deadline);
        error -> {error, loop_unavailable}
    end.

start_on(#py_loop{worker = Worker, port = Port, pending = Pending,
                  by_caller = ByCaller, monitored = Monitored,
                  max_pending = Max, max_packet = MaxPacket} = Loop,
         Request, Deadline) ->
    Ref = erlang:monitor(process, Worker, [{alias, reply_demonitor}]),
    try
        Bin = checked_size(packet(Request, Ref), MaxPacket),
        %% The table may already have gone with a dead worker; that and a
        %% closed port both raise badarg, and both mean the same here.
        case overloaded(Pending, Max) of
            true -> throw(overloaded);
            false -> ok
        end,
        case ets:member(Monitored, self()) of
            true -> ok;
            false -> gen_server:cast(Worker, {monitor, self()})
        end,
        %% Pending first: the result may come back before port_command
        %% returns, and the worker must already know where to send it.
        %% The caller index before that: should this process be killed
        %% in between, the worker's 'DOWN' handling finds the entry.
        true = ets:insert(ByCaller, {{self(), Ref}}),
        true = ets:insert(Pending, {Ref, self()}),
        case write(Port, Bin, Deadline) of
            ok -> {ok, Ref, {task, Loop}};
            %% Nothing was written: there is nothing to cancel.
            busy -> throw(timeout)
        end
    catch
        throw:overloaded ->
            abandon(Ref, Loop),
            {error, overloaded};
        throw:timeout ->
            abandon(Ref, Loop),
            {error, timeout};
        throw:{packet_too_large, _, _} = TooLarge ->
            abandon(Ref, Loop),
            {error, TooLarge};
        error:badarg ->
            abandon(Ref, Loop),
            {error, stale}
    end.

%% Writes Bin to Port without letting the runtime suspend the caller on a
%% busy port (its queue over the high-water mark: Python is not reading,
%% e.g. stopped or swamped): retries until Deadline, then reports `busy`
%% with nothing written. Raises badarg if the port is closed.
-spec write(port(), iodata(), integer() | infinity) -> ok | busy.
write(Port, Bin, Deadline) ->
    case erlang:port_command(Port, Bin, [nosuspend]) of
        true ->
            ok;
        false ->
            case after_ms(Deadline) of
                0 ->
                    busy;
                Ms ->
                    timer:sleep(min(Ms, ?BUSY_RETRY_MS)),
                    write(Port, Bin, Deadline)
            end
    end.

packet({task, Module, Func, Args, Kwargs, Opts}, Ref) ->
    pyport_wire:task(Ref, Module, Func, Args, Kwargs, Opts);
packet({actor, Module, Func, Args, Kwargs, Opts}, Ref) ->
    pyport_wire:actor_start(Ref, Module, Func, Args, Kwargs, Opts#{caller => self()});
packet({Kind, Code, Extra}, Ref) ->
    pyport_wire:source(Kind, Ref, Code, Extra#{caller => self()}).

%% The port would skip an oversized packet without being able to say which
%% task it was, leaving the caller to time out; refuse it here instead.
checked_size(Packet, Max) ->
    case pyport_wire:payload_size(Packet) of
        Size when Size > Max -> throw({packet_too_large, Size, Max});
        _ -> Packet
    end.

overloaded(_, infinity) -> false;
overloaded(Pending, Max) ->
    case ets:info(Pending, size) of
        %% The worker, and its table with it, is gone (`undefined` would
        %% compare greater than any number and read as overloaded).
        undefined -> error(badarg);
        Size -> Size >= Max
    end.

%% Forgets a task that will never be answered: after the demonitor the
%% alias is inactive, so only a reply already delivered can be left, and
%% the receive removes it.
abandon(Ref, #py_loop{pending = Pending, by_caller = ByCaller}) ->
    erlang:demonitor(Ref, [flush]),
    catch ets:delete(Pending, Ref),
    catch ets:delete(ByCaller, {self(), Ref}),
    receive
        {Ref, _} -> ok
    after 0 -> ok
    end.

wait(Ref, {task, #py_loop{stats = Stats} = Loop, T0, Queue} = Handle, Deadline) ->
    receive
        {Ref, Result} ->
            Latency = erlang:monotonic_time(microsecond) - T0,
            ok = py_ops_stats:record(Stats, Latency, Queue),
            ok = py_telemetry:task_stop(Loop#py_loop.index, Latency, Queue, Result),
            Result;
        {'DOWN', Ref, process, _, Reason} ->
            {error, {worker_down, Reason}}
    after after_ms(Deadline) ->
        case after_ms(Deadline) of
            %% Only a chunk of a longer wait has passed.
            Left when Left =/= 0 -> wait(Ref, Handle, Deadline);
            0 -> timed_out(Ref, Handle)
        end
    end.

timed_out(Ref, Handle) ->
    erlang:demonitor(Ref, [flush]),
    receive
        %% Arrived between the timeout and the demonitor: use it rather
        %% than cancel a task that has already finished.
        {Ref, Result} -> Result
    after 0 ->
        cancel(Ref, Handle),
        {error, timeout}
    end.

%% The entry stays, marked cancelled, until Python answers: the worker
%% drops that answer, and kills the port if none comes within the grace
%% period while the port makes no progress at all (see pyport_overdue).
cancel(Ref, {task, #py_loop{worker = Worker, port = Port, pending = Pending,
                            by_caller = ByCaller, cancel_grace_ms = Grace}, _, _}) ->
    case pyport_overdue:mark(Pending, Ref, Grace) of
        KillAt when is_integer(KillAt) ->
            catch ets:delete(ByCaller, {self(), Ref}),
            gen_server:cast(Worker, {cancelled, KillAt}),
            try erlang:port_command(Port, pyport_wire:cancel(Ref), [nosuspend]) of
                true -> ok;
                %% Python is not reading: the worker sends it once the
                %% port takes input again, and the caller returns now.
                false -> gen_server:cast(Worker, {cancel, Ref})
            catch
                %% The port is gone, and the task with it.
                error:badarg -> ok
            end;
        false ->
            %% The worker took the entry: the task has finished.
            ok
    end.

-spec deadline(timeout()) -> integer() | infinity.
deadline(infinity) -> infinity;
deadline(Ms) -> erlang:monotonic_time(millisecond) + Ms.

%% What is left of Deadline, as one `after` can wait it.
-spec after_ms(integer() | infinity) -> timeout().
after_ms(infinity) -> infinity;
after_ms(Deadline) ->
    min(?MAX_AFTER, max(0, Deadline - erlang:monotonic_time(millisecond))).
