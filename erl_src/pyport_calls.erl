%% The owner of a loop's calls: every kind of call (task, exec/eval,
%% stream, actor, handle method) is submitted, awaited, cancelled and
%% routed back through this module, the only one besides the worker that
%% knows the `#py_loop{}` record (pyport_loop.hrl) and the shapes of
%% the loop's table entries. Feature modules hold a loop() as an opaque
%% term and reach its tables and port through the functions here.
%%
%% The hot path stays out of the worker's mailbox: the caller encodes its
%% own packet and writes it to the port, and the worker only routes
%% results back. A call's id is a monitor of the worker that is also a
%% reply alias, so one reference gives the caller its reply channel,
%% notice of a dead worker, and (via demonitor) a way to make sure a late
%% reply is dropped by the runtime instead of landing in its mailbox.
%%
%% A loop's tables (made by new/4, with the worker as owner):
%% - pending: `{Ref, Caller}` for a task, exec/eval or actor (its proxy),
%%   `{Ref, {stream, Owner, Mode}}` for a stream, `{Ref, {cancelled,
%%   KillAt}}` for a call Erlang cancelled whose answer Python still owes
%%   (pyport_overdue). Callers insert before they write, so that the
%%   worker always knows where an answer goes.
%% - by_caller: `{{Caller, Ref}}` for every call whose caller still
%%   waits, ordered by caller, so a dead caller's calls are found by key
%%   prefix instead of a scan of pending.
%% - monitored: `{Caller, MonitorRef}`: callers ask the worker for a
%%   monitor once.
%% - streams: `{Ref, Credit}`: the items the port may still send on a
%%   stream (py_stream adds what its consumer grants, the worker charges
%%   what arrives).
%%
%% Every wait is bounded by the caller's own deadline: waiting for a loop
%% that is restarting (pyport_registry:await_loop/3), writing to a port
%% whose input pipe is full (a stopped or swamped Python), and waiting for
%% the result. Timeouts of any size are honoured, in chunks of the longest
%% `receive ... after` the runtime takes (after_ms/1).
%%
%% Writes to a port never suspend the writer (try_write/2 is the one
%% `port_command`): a caller that can wait retries until its deadline
%% (write/3), one that cannot hands the packet to the worker's queue
%% (send/2, send_port/2), which retries it without blocking either.
-module(pyport_calls).

-include("pyport_loop.hrl").

%% Callers' side.
-export([submit/3]).
-export([await/3]).
-export([cancel/2]).
-export([grant/3]).
-export([find_stream/1]).
-export([loop/1]).
-export([watch/2]).

%% Deadlines.
-export([deadline/1]).
-export([after_ms/1]).
-export([earliest/2]).
-export([deadline_opts/1]).

%% Writes to a port.
-export([try_write/2]).
-export([write/3]).
-export([send/2]).
-export([send_port/2]).

%% The worker's side.
-export([new/4]).
-export([take/2]).
-export([take_stream/2]).
-export([stream/2]).
-export([actor/2]).
-export([charge/3]).
-export([monitored/2]).
-export([caller_down/3]).
-export([port_exited/2]).

%% A loop, read-only.
-export([index/1]).
-export([worker/1]).
-export([max_pending/1]).
-export([max_packet/1]).
-export([handles/1]).
-export([callers/1]).
-export([load/1]).
-export([loads/0]).
-export([describe/1]).

%% For the unit tests of the routes, which build entries by hand.
-export([tables/1]).

%% The default pool's loops are integers, a named pool's {Pool, I}.
-type loop_index() :: pos_integer() | {atom(), pos_integer()}.
%% Opaque to every module but this one and the worker (the record's
%% header is theirs only).
-type loop() :: #py_loop{}.
-type deadline() :: integer() | infinity.
%% What submit/3 takes: the kind of call first.
-type request() :: {task, py_event_loop:py_name(), py_event_loop:py_name(), list(),
                    py_event_loop:kwargs(), map()}
                 | {spawn, py_event_loop:py_name(), py_event_loop:py_name(), list(),
                    py_event_loop:kwargs(), map()}
                 | {exec | eval, binary(), map()}
                 | {actor, py_event_loop:py_name(), py_event_loop:py_name(), list(),
                    py_event_loop:kwargs(), map()}
                 | {stream, py_event_loop:py_name(), py_event_loop:py_name(), list(),
                    py_event_loop:kwargs(), map(), stream_mode(), pos_integer()}.
-type stream_mode() :: pull | active.
%% A submitted call, as await/3 and cancel/2 need it.
-type call() :: {call | stream, #py_loop{}, T0 :: integer(), Queue :: integer()}.
-type submit_error() :: timeout | overloaded | loop_unavailable
                      | {packet_too_large, pos_integer(), pos_integer()}.
%% What take/2 finds: who waits for an answer.
-type taken() :: {call, pid()} | {stream, pid(), stream_mode()} | cancelled | none.
-export_type([loop_index/0, loop/0, deadline/0, request/0, call/0, stream_mode/0,
              submit_error/0, taken/0]).

%% The longest `receive ... after` (and timer) the runtime accepts.
-define(MAX_AFTER, 4294967295).
%% How often a caller retries a port that is busy (its queue above the
%% high-water mark, i.e. Python is not reading).
-define(BUSY_RETRY_MS, 5).
%% How long an active stream's cancel waits for the worker to have
%% delivered what it was delivering.
-define(SYNC_MS, 5000).

%% Callers' side.

%% Submits Request to loop Index by Deadline. A loop that is restarting
%% is waited for; so is one whose worker turns out to be dead when the
%% caller writes (the registry still names it until the pool notices).
%% A spawned task has no entry and no reference: `{ok, spawned}`.
-spec submit(loop_index(), request(), deadline())
    -> {ok, reference(), call()} | {ok, spawned} | {error, submit_error()}.
submit(Index, Request, Deadline) ->
    T0 = erlang:monotonic_time(microsecond),
    case live_loop(Index, Deadline) of
        {ok, #py_loop{worker = Worker} = Loop} ->
            case start_on(Loop, Request, Deadline) of
                {error, stale} ->
                    case pyport_registry:await_loop(Index, Worker, Deadline, after_ms(Deadline)) of
                        {ok, Fresh} -> timed(fresh(start_on(Fresh, Request, Deadline)), T0);
                        {error, _} = Error -> Error
                    end;
                Started ->
                    timed(Started, T0)
            end;
        {error, _} = Error ->
            Error
    end.

%% Waits for the answer of a call (a task, exec/eval) until Deadline; a
%% wait that runs out cancels the call. Records the call's latency and
%% queue time (pyport_ops_stats, py_telemetry).
-spec await(reference(), call(), deadline()) -> py_event_loop:result().
await(Ref, {call, #py_loop{stats = Stats, index = Index}, T0, Queue} = Call, Deadline) ->
    receive
        {Ref, Result} ->
            Latency = erlang:monotonic_time(microsecond) - T0,
            ok = pyport_ops_stats:record(Stats, Latency, Queue),
            ok = py_telemetry:task_stop(Index, Latency, Queue, Result),
            Result;
        {'DOWN', Ref, process, _, Reason} ->
            {error, {worker_down, Reason}}
    after after_ms(Deadline) ->
        case after_ms(Deadline) of
            %% Only a chunk of a longer wait has passed.
            Left when Left =/= 0 -> await(Ref, Call, Deadline);
            0 -> timed_out(Ref, Call)
        end
    end.

%% Cancels a call or stream of the caller: the entry stays, marked
%% cancelled, until Python answers (the worker drops that answer, and
%% kills the port if none comes within the grace period while the port
%% makes no progress at all, see pyport_overdue), and nothing more of it
%% reaches the caller. Safe on a call that has ended.
-spec cancel(reference(), call() | loop()) -> ok.
cancel(Ref, {call, Loop, _, _}) ->
    erlang:demonitor(Ref, [flush]),
    cancel_on(Ref, Loop, pyport_wire:cancel(Ref));
cancel(Ref, {stream, Loop, _, _}) ->
    cancel(Ref, Loop);
cancel(Ref, #py_loop{worker = Worker, pending = Pending} = Loop) ->
    Self = self(),
    Active = case lookup(Pending, Ref) of
                 [{Ref, {stream, Self, active}}] -> true;
                 _ -> false
             end,
    erlang:demonitor(Ref, [flush]),
    unalias(Ref),
    ok = cancel_on(Ref, Loop, pyport_wire:stream_cancel(Ref)),
    %% An active stream's items come to the owner's pid, not its alias:
    %% once the worker has answered, it has seen the mark and sends no
    %% more of them, and what came before is flushed by the caller.
    _ = Active andalso sync(Worker),
    ok.

%% Grants K more items of stream Ref. Credit is counted before it is
%% sent, so that the worker never sees an item the consumer has not made
%% room for as beyond the credit. `ended` when the stream is gone.
-spec grant(reference(), pos_integer(), call() | loop()) -> ok | busy | closed | ended.
grant(Ref, K, {stream, Loop, _, _}) ->
    grant(Ref, K, Loop);
grant(Ref, K, #py_loop{port = Port, streams = Credit}) ->
    try ets:update_counter(Credit, Ref, {2, K}) of
        _ ->
            %% Python has not read its input for a while: the stream
            %% stalls and ends by its own timeouts or the cancel grace.
            write(Port, pyport_wire:stream_credit(Ref, K), deadline(?SYNC_MS))
    catch
        %% The stream has ended (or the worker is gone).
        error:badarg -> ended
    end.

%% The loop of the caller's active stream Ref, in any pool.
-spec find_stream(reference()) -> {ok, loop()} | error.
find_stream(Ref) ->
    find_stream(Ref, pyport_registry:loop_ids()).

%% The loop a call was submitted to.
-spec loop(call()) -> loop().
loop({_, Loop, _, _}) -> Loop.

%% Has the worker of Loop monitor Pid (a handle's new owner), so that what
%% Pid owns goes when it exits.
-spec watch(loop(), pid()) -> ok.
watch(#py_loop{worker = Worker}, Pid) ->
    gen_server:cast(Worker, {monitor, Pid}).

%% Deadlines.

-spec deadline(timeout()) -> deadline().
deadline(infinity) -> infinity;
deadline(Ms) -> erlang:monotonic_time(millisecond) + Ms.

%% What is left of Deadline, as one `after` can wait it.
-spec after_ms(deadline()) -> timeout().
after_ms(infinity) -> infinity;
after_ms(Deadline) ->
    min(?MAX_AFTER, max(0, Deadline - erlang:monotonic_time(millisecond))).

-spec earliest(deadline(), deadline()) -> deadline().
earliest(infinity, B) -> B;
earliest(A, infinity) -> A;
earliest(A, B) -> min(A, B).

%% The deadline Python gets with a call whose caller waits Timeout.
%% Beyond ?MAX_AFTER (49.7 days) Python gets none of its own: the caller
%% still cancels the call when its (chunked) wait runs out.
-spec deadline_opts(timeout()) -> #{deadline_ms => non_neg_integer()}.
deadline_opts(infinity) -> #{};
deadline_opts(Ms) when Ms > ?MAX_AFTER -> #{};
deadline_opts(Ms) -> #{deadline_ms => Ms}.

%% Writes to a port.

%% The one `port_command` to a loop's port: never suspends the caller on
%% a busy port (its queue over the high-water mark: Python is not
%% reading); `busy` means nothing was written.
-spec try_write(port() | loop(), iodata()) -> ok | busy | closed.
try_write(#py_loop{port = Port}, Packet) ->
    try_write(Port, Packet);
try_write(Port, Packet) ->
    try erlang:port_command(Port, Packet, [nosuspend]) of
        true -> ok;
        false -> busy
    catch
        error:badarg -> closed
    end.

%% try_write/2 retried every ?BUSY_RETRY_MS until Deadline.
-spec write(port(), iodata(), deadline()) -> ok | busy | closed.
write(Port, Packet, Deadline) ->
    case try_write(Port, Packet) of
        busy ->
            case after_ms(Deadline) of
                0 ->
                    busy;
                Ms ->
                    timer:sleep(min(Ms, ?BUSY_RETRY_MS)),
                    write(Port, Packet, Deadline)
            end;
        Done ->
            Done
    end.

%% A packet for Loop's port that must go but whose writer cannot wait (a
%% cancel, a release): what the port does not take now goes to the
%% worker's queue, after what is already there.
-spec send(loop(), iodata()) -> ok | queued | closed.
send(#py_loop{port = Port, worker = Worker}, Packet) ->
    queue_if_busy(try_write(Port, Packet), Worker, Packet).

%% send/2 for a writer that knows only the port (its connected process
%% is the worker).
-spec send_port(port(), iodata()) -> ok | queued | closed.
send_port(Port, Packet) ->
    case try_write(Port, Packet) of
        busy ->
            case erlang:port_info(Port, connected) of
                {connected, Worker} -> queue_if_busy(busy, Worker, Packet);
                undefined -> closed
            end;
        Done ->
            Done
    end.

%% The worker's side.

%% A fresh loop for the worker calling this (the owner of its tables).
-spec new(loop_index(), port(), map(), #{max_pending := pos_integer() | infinity,
                                         max_packet := pos_integer(),
                                         cancel_grace_ms := non_neg_integer(),
                                         handles := term(), streams := ets:tid(),
                                         os_pid := integer() | undefined,
                                         stats := pyport_ops_stats:ref()})
    -> loop().
new(Index, Port, Info, #{max_pending := MaxPending, max_packet := MaxPacket,
                         cancel_grace_ms := Grace, handles := Handles,
                         streams := Streams, os_pid := OsPid, stats := Stats}) ->
    #py_loop{index = Index, worker = self(), port = Port,
             pending = ets:new(py_event_pending, [set, public, {write_concurrency, true}]),
             by_caller = ets:new(py_event_by_caller,
                                 [ordered_set, public, {write_concurrency, true}]),
             monitored = ets:new(py_event_monitored, [set, public, {read_concurrency, true}]),
             max_pending = MaxPending, max_packet = MaxPacket, cancel_grace_ms = Grace,
             os_pid = OsPid, info = Info, handles = Handles, streams = Streams,
             stats = Stats}.

%% Takes the entry of an answer's Ref: the caller that waits for it (its
%% caller-index row goes too), a stream (all its rows go), a cancelled
%% call (the answer goes nowhere), or none (a spawned task, a lost race).
-spec take(loop(), term()) -> taken().
take(#py_loop{pending = Pending, by_caller = ByCaller, streams = Credit}, Ref) ->
    case ets:take(Pending, Ref) of
        [{Ref, Caller}] when is_pid(Caller) ->
            true = ets:delete(ByCaller, {Caller, Ref}),
            {call, Caller};
        [{Ref, {actor, Proxy}}] ->
            %% An actor's end is its task's result, awaited by the proxy.
            true = ets:delete(ByCaller, {Proxy, Ref}),
            {call, Proxy};
        [{Ref, {stream, Owner, Mode}}] ->
            true = ets:delete(ByCaller, {Owner, Ref}),
            true = ets:delete(Credit, Ref),
            {stream, Owner, Mode};
        [{Ref, {cancelled, _}}] ->
            cancelled;
        [] ->
            none
    end.

%% take/2 for a stream's end: only a stream's entries are taken (the
%% answer to a stream's cancel included: only streams have a credit
%% entry), so a forged end naming a task leaves that task alone.
-spec take_stream(loop(), term()) -> taken().
take_stream(#py_loop{pending = Pending, streams = Credit} = Loop, Ref) ->
    case lookup(Pending, Ref) of
        [{Ref, {stream, _, _}}] ->
            take(Loop, Ref);
        [{Ref, {cancelled, _}}] ->
            case ets:take(Credit, Ref) of
                [_] -> true = ets:delete(Pending, Ref), cancelled;
                [] -> none
            end;
        _ ->
            none
    end.

%% The live stream Ref, left in place.
-spec stream(loop(), term()) -> {stream, pid(), stream_mode()} | none.
stream(#py_loop{pending = Pending}, Ref) ->
    case lookup(Pending, Ref) of
        [{Ref, {stream, _, _} = Stream}] -> Stream;
        _ -> none
    end.

%% The proxy of actor Ref, left in place; none for any other kind of
%% call, so that an actor packet naming a task reaches nobody.
-spec actor(loop(), term()) -> {actor, pid()} | none.
actor(#py_loop{pending = Pending}, Ref) ->
    case lookup(Pending, Ref) of
        [{Ref, {actor, Proxy}}] -> {actor, Proxy};
        _ -> none
    end.

%% Charges N items to stream Ref's credit.
-spec charge(loop(), reference(), non_neg_integer()) -> ok | exceeded.
charge(#py_loop{streams = Credit}, Ref, N) ->
    try ets:update_counter(Credit, Ref, {2, -N}) of
        Left when Left >= 0 -> ok;
        _ -> exceeded
    catch
        %% No credit entry: the consumer has just cancelled.
        error:badarg -> ok
    end.

%% The worker monitors caller Pid, once (callers ask before their first
%% call, and may ask twice in a race).
-spec monitored(loop(), pid()) -> ok.
monitored(#py_loop{monitored = Monitored}, Pid) ->
    case ets:member(Monitored, Pid) of
        true -> ok;
        false -> true = ets:insert(Monitored, {Pid, erlang:monitor(process, Pid)}), ok
    end.

%% Caller Pid died (its monitor MRef fired): its calls still pending are
%% marked cancelled; returns them with their deadlines, for the worker to
%% send their cancels and arm its timer. A call whose answer came
%% meanwhile is not marked and needs no cancel.
-spec caller_down(loop(), pid(), reference()) -> [{reference(), integer()}].
caller_down(#py_loop{pending = Pending, by_caller = ByCaller, monitored = Monitored,
                     cancel_grace_ms = Grace}, Pid, MRef) ->
    true = ets:delete_object(Monitored, {Pid, MRef}),
    %% The caller's own calls only, by key prefix: a mass death of callers
    %% costs each 'DOWN' its own entries, not a scan of the pending table.
    Refs = ets:select(ByCaller, [{{{Pid, '$1'}}, [], ['$1']}]),
    true = ets:match_delete(ByCaller, {{Pid, '_'}}),
    [{Ref, KillAt} || Ref <- Refs,
                      KillAt <- [pyport_overdue:mark(Pending, Ref, Grace)],
                      KillAt =/= false].

%% The port is gone: every caller still waiting gets `{error, Reason}` at
%% once (a stream's owner as its last message); returns how many calls
%% failed.
-spec port_exited(loop(), term()) -> non_neg_integer().
port_exited(#py_loop{pending = Pending, by_caller = ByCaller, streams = Credit}, Reason) ->
    Entries = ets:tab2list(Pending),
    true = ets:delete_all_objects(Pending),
    true = ets:delete_all_objects(ByCaller),
    true = ets:delete_all_objects(Credit),
    lists:foldl(fun({Ref, Caller}, N) when is_pid(Caller) ->
                        Ref ! {Ref, {error, Reason}},
                        N + 1;
                   ({Ref, {actor, _}}, N) ->
                        Ref ! {Ref, {error, Reason}},
                        N + 1;
                   ({Ref, {stream, _, _}}, N) ->
                        Ref ! {py_stream, Ref, {error, Reason}},
                        N;
                   (_, N) ->
                        N
                end, 0, Entries).

%% A loop, read-only.

-spec index(loop()) -> loop_index().
index(#py_loop{index = Index}) -> Index.

-spec worker(loop()) -> pid().
worker(#py_loop{worker = Worker}) -> Worker.

-spec max_pending(loop()) -> pos_integer() | infinity.
max_pending(#py_loop{max_pending = Max}) -> Max.

-spec max_packet(loop()) -> pos_integer().
max_packet(#py_loop{max_packet = Max}) -> Max.

%% The loop's object handle tables (pyport_handle).
-spec handles(loop()) -> term().
handles(#py_loop{handles = Handles}) -> Handles.

%% The caller index (py_callback's send policy: a pid is a caller when
%% it has a call pending).
-spec callers(loop()) -> ets:tid().
callers(#py_loop{by_caller = ByCaller}) -> ByCaller.

%% Pending calls: the load figure of the loop.
-spec load(loop()) -> non_neg_integer().
load(#py_loop{pending = Pending}) ->
    case ets:info(Pending, size) of
        undefined -> 0;
        Size -> Size
    end.

%% Pending calls per loop of the default pool, `restarting` for a loop
%% between two ports (the load figure py_cluster publishes); [] when the
%% pool is not running.
-spec loads() -> [{pos_integer(), non_neg_integer() | restarting}].
loads() ->
    case pyport_registry:num_loops() of
        undefined ->
            [];
        N ->
            [{I, case pyport_registry:lookup(I) of
                     {ok, Loop} -> load(Loop);
                     _ -> restarting
                 end} || I <- lists:seq(1, N)]
    end.

%% What get_stats/0 shows of a loop.
-spec describe(loop()) -> #{worker := pid(), port := port(),
                            os_pid := integer() | undefined, pending := non_neg_integer(),
                            monitored := non_neg_integer(), info := map(),
                            tasks := pyport_ops_stats:stats()}.
describe(#py_loop{worker = Worker, port = Port, os_pid = OsPid, info = Info,
                  monitored = Monitored, stats = Stats} = Loop) ->
    #{worker => Worker, port => Port, os_pid => OsPid, pending => load(Loop),
      monitored => case ets:info(Monitored, size) of
                       undefined -> 0;
                       Size -> Size
                   end,
      info => Info, tasks => pyport_ops_stats:read(Stats)}.

-spec tables(loop()) -> {ets:tid(), ets:tid(), ets:tid()}.
tables(#py_loop{pending = Pending, by_caller = ByCaller, streams = Credit}) ->
    {Pending, ByCaller, Credit}.

%% Internal.

-spec live_loop(loop_index(), deadline())
    -> {ok, loop()} | {error, timeout | overloaded | loop_unavailable}.
live_loop(Index, Deadline) ->
    case pyport_registry:lookup(Index) of
        {ok, Loop} -> {ok, Loop};
        restarting -> pyport_registry:await_loop(Index, none, Deadline, after_ms(Deadline));
        error -> {error, loop_unavailable}
    end.

%% The handle of a started call carries its submission time and how long
%% it took the port to take it (pyport_ops_stats).
timed({ok, Ref, {Kind, Loop}}, T0) ->
    {ok, Ref, {Kind, Loop, T0, erlang:monotonic_time(microsecond) - T0}};
timed(Other, _) ->
    Other.

%% A loop that fails again right after its restart is not waited for twice.
fresh({error, stale}) -> {error, loop_unavailable};
fresh(Started) -> Started.

start_on(#py_loop{port = Port, max_packet = MaxPacket},
         {spawn, Module, Func, Args, Kwargs, Opts}, Deadline) ->
    %% Fire and forget: no entry, no monitor, and the task is not
    %% cancelled when the caller exits (that is the point of spawning it).
    Packet = pyport_wire:task(make_ref(), Module, Func, Args, Kwargs,
                              Opts#{reply => false, caller => self()}),
    try write(Port, checked_size(Packet, MaxPacket), Deadline) of
        ok -> {ok, spawned};
        busy -> {error, timeout};
        closed -> {error, stale}
    catch
        throw:{packet_too_large, _, _} = TooLarge -> {error, TooLarge}
    end;
start_on(#py_loop{worker = Worker, port = Port, pending = Pending,
                  by_caller = ByCaller, monitored = Monitored, streams = Credit,
                  max_pending = Max, max_packet = MaxPacket} = Loop,
         Request, Deadline) ->
    Ref = reference(Request, Worker),
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
        %% Pending last: the answer may come back before port_command
        %% returns, and the worker must already know where to send it.
        %% The caller index before that: should this process be killed
        %% in between, the worker's 'DOWN' handling finds the entry.
        Kind = case Request of
                   {stream, _, _, _, _, _, Mode, Window} ->
                       true = ets:insert(Credit, {Ref, Window}),
                       true = ets:insert(ByCaller, {{self(), Ref}}),
                       true = ets:insert(Pending, {Ref, {stream, self(), Mode}}),
                       stream;
                   {actor, _, _, _, _, _} ->
                       %% Its own shape: actor packets are routed only to
                       %% an actor's proxy (actor/2), never to a task's
                       %% caller whose id Python names in a forged one.
                       true = ets:insert(ByCaller, {{self(), Ref}}),
                       true = ets:insert(Pending, {Ref, {actor, self()}}),
                       call;
                   _ ->
                       true = ets:insert(ByCaller, {{self(), Ref}}),
                       true = ets:insert(Pending, {Ref, self()}),
                       call
               end,
        case write(Port, Bin, Deadline) of
            ok -> {ok, Ref, {Kind, Loop}};
            %% Nothing was written: there is nothing to cancel.
            busy -> throw(timeout);
            closed -> error(badarg)
        end
    catch
        throw:Why ->
            abandon(Ref, Loop),
            {error, Why};
        error:badarg ->
            abandon(Ref, Loop),
            {error, stale}
    end.

%% The call's id and reply channel. Pull streams watch the worker too
%% (next/2 sees it die) and end the alias themselves; an active stream's
%% owner gets only the stream's own messages, and its alias goes with the
%% last of them (items come to the owner's pid, see pyport_stream_route).
reference({stream, _, _, _, _, _, pull, _}, Worker) ->
    erlang:monitor(process, Worker, [{alias, explicit_unalias}]);
reference({stream, _, _, _, _, _, active, _}, _Worker) ->
    alias([reply]);
reference(_, Worker) ->
    erlang:monitor(process, Worker, [{alias, reply_demonitor}]).

packet({task, Module, Func, Args, Kwargs, Opts}, Ref) ->
    %% The caller is what erlang.self() returns in the task.
    pyport_wire:task(Ref, Module, Func, Args, Kwargs, Opts#{caller => self()});
packet({actor, Module, Func, Args, Kwargs, Opts}, Ref) ->
    pyport_wire:actor_start(Ref, Module, Func, Args, Kwargs, Opts#{caller => self()});
packet({stream, Module, Func, Args, Kwargs, Opts, _Mode, _Window}, Ref) ->
    pyport_wire:stream_start(Ref, Module, Func, Args, Kwargs, Opts#{caller => self()});
packet({Kind, Code, Extra}, Ref) when Kind =:= exec; Kind =:= eval ->
    pyport_wire:source(Kind, Ref, Code, Extra#{caller => self()}).

%% The port would skip an oversized packet without being able to say which
%% call it was, leaving the caller to time out; refuse it here instead.
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

%% Forgets a call that will never be answered: after the demonitor (and
%% unalias) the alias is inactive, so only an answer already delivered
%% can be left, and the receive removes it.
abandon(Ref, #py_loop{pending = Pending, by_caller = ByCaller, streams = Credit}) ->
    erlang:demonitor(Ref, [flush]),
    unalias(Ref),
    catch ets:delete(Pending, Ref),
    catch ets:delete(ByCaller, {self(), Ref}),
    catch ets:delete(Credit, Ref),
    receive
        {Ref, _} -> ok
    after 0 -> ok
    end.

timed_out(Ref, {call, Loop, _, _}) ->
    erlang:demonitor(Ref, [flush]),
    receive
        %% Arrived between the timeout and the demonitor: use it rather
        %% than cancel a call that has already finished.
        {Ref, Result} -> Result
    after 0 ->
        ok = cancel_on(Ref, Loop, pyport_wire:cancel(Ref)),
        {error, timeout}
    end.

%% Marks the call cancelled (the worker then expects Python's answer
%% within the cancel grace) and tells the port.
cancel_on(Ref, #py_loop{worker = Worker, pending = Pending, by_caller = ByCaller,
                        cancel_grace_ms = Grace} = Loop, Packet) ->
    case pyport_overdue:mark(Pending, Ref, Grace) of
        KillAt when is_integer(KillAt) ->
            catch ets:delete(ByCaller, {self(), Ref}),
            gen_server:cast(Worker, {cancelled, KillAt}),
            %% Python not reading: the worker sends it once the port
            %% takes input again, and the caller returns now.
            _ = send(Loop, Packet),
            ok;
        false ->
            %% The worker took the entry: the call has finished.
            ok
    end.

%% Returns once the worker has handled what came before this request.
sync(Worker) ->
    try
        gen_server:call(Worker, sync, ?SYNC_MS)
    catch
        exit:_ -> ok
    end.

queue_if_busy(busy, Worker, Packet) ->
    gen_server:cast(Worker, {queue, [Packet]}),
    queued;
queue_if_busy(Done, _Worker, _Packet) ->
    Done.

lookup(Pending, Ref) ->
    try
        ets:lookup(Pending, Ref)
    catch
        error:badarg -> []
    end.

find_stream(_Ref, []) ->
    error;
find_stream(Ref, [Index | Rest]) ->
    Self = self(),
    case pyport_registry:lookup(Index) of
        {ok, #py_loop{pending = Pending} = Loop} ->
            case lookup(Pending, Ref) of
                [{Ref, {stream, Self, active}}] -> {ok, Loop};
                _ -> find_stream(Ref, Rest)
            end;
        _ ->
            find_stream(Ref, Rest)
    end.
