%% Owns one pyport OS process (one Python interpreter, one asyncio loop)
%% from the moment it is ready (pyport_port opens it and waits for the
%% handshake) to its end.
%%
%% Callers write task packets to the port themselves (see py_event_task);
%% this process splits the port's output into frames (pyport_framer),
%% decodes them as untrusted input (pyport_wire, within the loop's atom
%% budget kept by pyport_atoms), routes each result to the caller's reply
%% alias, hands log records and output lines to pyport_log and Python's
%% `erlang.call`, `erlang.send` and `erlang.whereis` to py_callback,
%% cancels the tasks of callers that die (and has the port killed when
%% Python does not answer, see pyport_overdue), and, when the port exits,
%% fails every pending task at once and stops so that its supervisor
%% starts a fresh port. Output it cannot make sense of (a frame over max_output_packet, a
%% compressed or malformed term) means the port is compromised: it is
%% closed and handled like an exit, `{killed, bad_output}`.
-module(py_event_worker).
-behaviour(gen_server).

-include("py_event_loop.hrl").

%% API.
-export([start_link/1]).
-export([send_later/2]).

%% gen_server.
-export([init/1]).
-export([handle_call/3]).
-export([handle_cast/2]).
-export([handle_info/2]).
-export([handle_continue/2]).
-export([terminate/2]).
-export([code_change/3]).
-export([format_status/1]).

-record(state, {
    index :: py_event_task:loop_index(),
    port :: port() | undefined,
    pending :: ets:tid(),
    by_caller :: ets:tid(),
    monitored :: ets:tid(),
    os_pid :: integer() | undefined,
    cancel_grace_ms :: non_neg_integer(),
    %% The one timer armed for the earliest cancelled-task deadline.
    overdue_timer :: pyport_overdue:timer(),
    %% When the port last sent anything: a port still sending is making
    %% progress and is not killed for cancels it has yet to answer.
    last_output :: integer(),
    %% Cancels the port was too busy to take (Python not reading), oldest
    %% first, and the timer that retries them.
    backlog = queue:new() :: queue:queue(binary()),
    backlog_timer :: reference() | undefined,
    %% Where Python's stdout/stderr lines go.
    output :: pyport_config:output(),
    %% The largest packet the port accepts (callback replies included).
    max_packet :: pos_integer(),
    %% The largest frame accepted from the port (max_output_packet).
    max_output :: pos_integer(),
    %% The port's output stream, split into frames.
    framer :: pyport_framer:framer(),
    %% The loop's atom budget (pyport_atoms counts what is used).
    max_atoms :: non_neg_integer(),
    %% Where Python's erlang.send/whereis may reach (py_callback).
    send_allow :: py_callback:send_allow(),
    %% The callbacks Python's calls run now (bounded: max_callbacks).
    callbacks :: py_callback_runs:runs(),
    %% Frames refused for atoms so far: only some are logged.
    atoms_refused = 0 :: non_neg_integer(),
    %% Object handles and their owners (py_handle).
    handles :: py_handle:tables(),
    %% Each stream's credit (py_stream_route).
    streams :: ets:tid() | undefined,
    %% python_log_level unset: Python's level follows the OTP logger's
    %% (the pool tells of changes).
    follow_log_level = false :: boolean()
}).

%% How long a stopping worker lets Python cancel its tasks and exit
%% before it closes the port (EOF then ends the process anyway).
-define(STOP_GRACE_MS, 2000).
%% How many queued packets (cancels) go out in one write.
-define(CANCEL_BATCH, 4096).

%% How soon the worker retries cancels a busy port did not take.
-define(BACKLOG_RETRY_MS, 20).

%% API.

-spec start_link(py_event_task:loop_index()) -> {ok, pid()} | ignore | {error, term()}.
start_link(Index) ->
    gen_server:start_link(?MODULE, Index, []).

%% Packet (an answer to Python) goes out through Worker's queue, after
%% what waits there: for writers that found the port too busy and must
%% not wait for it (py_callback).
-spec send_later(pid(), iodata()) -> ok.
send_later(Worker, Packet) ->
    gen_server:cast(Worker, {send_later, Packet}).

%% gen_server.

-spec init(py_event_task:loop_index())
    -> {ok, #state{}, {continue, {frames, [binary()]}}} | {stop, term()}.
init(Index) ->
    %% Port exits must arrive as messages, and a shutdown from the
    %% supervisor must run terminate/2 so that Python gets its `stop`.
    process_flag(trap_exit, true),
    case pyport_config:loop(Index) of
        %% A venv with requirements is made and filled first (py_venv).
        {ok, Config0} ->
            case py_venv:ensure(Index, Config0) of
                {ok, Config} -> start_port(Index, Config);
                {error, Reason} -> {stop, {venv_failed, Reason}}
            end;
        {error, Reason} -> {stop, Reason}
    end.

-spec handle_call(term(), gen_server:from(), #state{})
    -> {reply, {error, {unknown_call, term()}}, #state{}}.
handle_call(Request, _From, State) ->
    {reply, {error, {unknown_call, Request}}, State}.

-spec handle_cast(term(), #state{}) -> {noreply, #state{}}.
handle_cast({cancelled, KillAt}, State) when is_integer(KillAt) ->
    %% A caller gave up on a task and asked Python to cancel it; Python
    %% has until KillAt to answer (see pyport_overdue).
    {noreply, arm_overdue(KillAt, State)};
handle_cast({cancel, Ref}, State) when is_reference(Ref) ->
    %% A caller's cancel the busy port did not take; it is not kept
    %% waiting for the port, the worker sends it later.
    {noreply, send_cancels([Ref], State)};
handle_cast({monitor, Pid}, #state{monitored = Monitored} = State)
  when is_pid(Pid) ->
    %% Callers ask before their first task, and may ask twice in a race.
    case ets:member(Monitored, Pid) of
        true -> ok;
        false -> true = ets:insert(Monitored, {Pid, erlang:monitor(process, Pid)})
    end,
    {noreply, State};
handle_cast({release_handles, Ns}, State) when is_list(Ns) ->
    %% An owner's release the busy port did not take.
    {noreply, send_queued([pyport_wire:obj_release(Ns)], State)};
handle_cast({send_later, Packet}, State) ->
    {noreply, send_queued([Packet], State)};
handle_cast({otp_log_level, Level}, #state{follow_log_level = true} = State) ->
    %% The OTP logger's level changed (py_event_loop_pool follows it).
    {noreply, send_queued([pyport_wire:log_level(Level)], State)};
handle_cast(_Msg, State) ->
    {noreply, State}.

-spec handle_info(term(), #state{})
    -> {noreply, #state{}} | {stop, {python_exit, term()}, #state{}}.
handle_info({Port, {data, Bin}}, #state{port = Port, framer = Framer} = State) ->
    case pyport_framer:feed(Bin, Framer) of
        {ok, [], Framer1} ->
            {noreply, State#state{framer = Framer1}};
        {ok, Frames, Framer1} ->
            %% Progress (see pyport_overdue) is a whole packet: bytes that
            %% only grow a frame that never ends (a forged length, a
            %% stalled stream) do not keep a stuck port alive.
            frames(Frames, State#state{framer = Framer1,
                                       last_output = erlang:monotonic_time(millisecond)});
        {error, Reason} ->
            bad_output(Reason, State)
    end;
handle_info({Port, {exit_status, Status}}, #state{port = Port} = State) ->
    port_exited(Status, State);
handle_info({'EXIT', Port, Reason}, #state{port = Port} = State) ->
    %% Without an exit status first: the port driver itself failed.
    port_exited(Reason, State);
handle_info({'DOWN', MRef, process, Pid, _},
            #state{pending = Pending, by_caller = ByCaller, monitored = Monitored,
                   cancel_grace_ms = Grace} = State) ->
    true = ets:delete_object(Monitored, {Pid, MRef}),
    %% The caller's own tasks only, by key prefix: a mass death of callers
    %% costs each 'DOWN' its own entries, not a scan of the pending table.
    Refs = ets:select(ByCaller, [{{{Pid, '$1'}}, [], ['$1']}]),
    true = ets:match_delete(ByCaller, {{Pid, '_'}}),
    %% Kept as cancelled until Python answers, so that a task that
    %% ignores the cancel is noticed. A task whose result came meanwhile
    %% is not marked and needs no cancel.
    Marked = [{Ref, KillAt} || Ref <- Refs,
                               KillAt <- [pyport_overdue:mark(Pending, Ref, Grace)],
                               KillAt =/= false],
    State1 = send_cancels([Ref || {Ref, _} <- Marked], State),
    State2 = release_handles(py_handle:owner_down(Pid, State#state.handles), State1),
    {noreply, lists:foldl(fun({_, KillAt}, S) -> arm_overdue(KillAt, S) end,
                          State2, Marked)};
handle_info({timeout, TRef, retry_backlog},
            #state{backlog_timer = TRef, backlog = Backlog} = State) ->
    {noreply, flush_backlog(Backlog, State#state{backlog = queue:new(),
                                                 backlog_timer = undefined})};
handle_info({timeout, TRef, overdue_check},
            #state{overdue_timer = {TRef, _}, pending = Pending,
                   last_output = LastOutput, cancel_grace_ms = Grace} = State0) ->
    State = State0#state{overdue_timer = undefined},
    case pyport_overdue:check(Pending, LastOutput, Grace) of
        none -> {noreply, State};
        {wait, KillAt} -> {noreply, arm_overdue(KillAt, forget_overdue(State))};
        {overdue, N} -> unresponsive(N, State)
    end;
handle_info(_Info, State) ->
    {noreply, State}.

%% The frames that came in the same read as `ready`.
-spec handle_continue({frames, [binary()]}, #state{})
    -> {noreply, #state{}} | {stop, {python_exit, term()}, #state{}}.
handle_continue({frames, Frames}, State) ->
    frames(Frames, State).

%% Reports (the crash report above all) show how many packets wait, not
%% the packets: a port that stopped reading can leave 100,000 answers
%% queued, which would keep the logger, and the worker with it, busy for
%% minutes.
-spec format_status(gen_server:format_status()) -> gen_server:format_status().
format_status(#{state := #state{backlog = Backlog} = State} = Status) ->
    Status#{state := {State#state{backlog = queue:new()},
                      {backlog_packets, queue:len(Backlog)}}};
format_status(Status) ->
    Status.

%% The state record is unchanged across versions so far.
-spec code_change(term(), #state{}, term()) -> {ok, #state{}}.
code_change(_OldVsn, State, _Extra) ->
    {ok, State}.

-spec terminate(term(), #state{}) -> ok.
terminate(_Reason, #state{port = undefined}) ->
    ok;
terminate(_Reason, #state{port = Port} = State) ->
    %% Python cancels its tasks on `stop`; routing the replies that come
    %% back while it does lets callers see `cancelled`, not a dead worker.
    _ = case send_packet(Port, pyport_wire:stop()) of
            ok -> drain(State, erlang:monotonic_time(millisecond) + ?STOP_GRACE_MS);
            %% Python is not reading: a `stop` would never be read either.
            busy -> pyport_port:close(Port);
            closed -> ok
        end,
    restarted(State).

%% restart_loop/1 marks the loop restarting before it stops this worker
%% (py_pool): the tasks Python did not answer (submitted as it stopped,
%% or not cancelled within the grace) are `cancelled`, as restart_loop
%% documents, not a dead worker. Any other stop leaves them worker_down.
restarted(#state{index = Index, pending = Pending}) ->
    case py_event_loop_pool:lookup(Index) of
        restarting ->
            Entries = ets:tab2list(Pending),
            py_stream_route:exited(Entries, cancelled),
            _ = [Ref ! {Ref, {error, cancelled}} || {Ref, Caller} <- Entries, is_pid(Caller)],
            ok;
        _ ->
            ok
    end.

%% Internal.

-spec start_port(py_event_task:loop_index(), pyport_config:config())
    -> {ok, #state{}, {continue, {frames, [binary()]}}} | {stop, term()}.
start_port(Index, Config) ->
    case pyport_port:open(Index, Config) of
        {ok, Port, Info, Framer, Frames} ->
            %% (A port that died meanwhile is noticed by its exit status,
            %% like any crash.)
            Handles = py_handle:new(maps:get(max_handles, Config),
                                   maps:get(max_handles_per_owner, Config)),
            _ = send_packet(Port, pyport_wire:setup(self(), Index,
                                                    py_handle:setup_info(Handles))),
            {ok, State} = registered(Index, Port, Info, Framer, Config, Handles),
            {ok, caught_up_log_level(Config, State), {continue, {frames, Frames}}};
        {error, Reason} ->
            {stop, {port_start_failed, Reason}}
    end.

registered(Index, Port, Info, Framer, #{max_pending := MaxPending,
                                        max_packet := MaxPacket,
                                        max_output_packet := MaxOutput,
                                        max_atoms := MaxAtoms,
                                        send_allow := SendAllow,
                                        max_callbacks := MaxCallbacks,
                                        cancel_grace_ms := Grace,
                                        output := Output} = Config, Handles) ->
    Pending = ets:new(py_event_pending,
                      [set, public, {write_concurrency, true}]),
    ByCaller = ets:new(py_event_by_caller,
                       [ordered_set, public, {write_concurrency, true}]),
    Monitored = ets:new(py_event_monitored,
                        [set, public, {read_concurrency, true}]),
    OsPid = case Info of
                #{os_pid := P} when is_integer(P) -> P;
                _ -> port_os_pid(Port)
            end,
    Streams = py_stream_route:new_table(),
    Loop = #py_loop{index = Index, worker = self(), port = Port,
                    pending = Pending, by_caller = ByCaller, monitored = Monitored,
                    max_pending = MaxPending, max_packet = MaxPacket,
                    cancel_grace_ms = Grace, os_pid = OsPid, info = Info,
                    handles = Handles, streams = Streams, stats = py_ops_stats:new()},
    ok = py_event_loop_pool:register_loop(Index, Loop),
    {ok, #state{index = Index, port = Port, pending = Pending,
                by_caller = ByCaller, monitored = Monitored, os_pid = OsPid,
                last_output = erlang:monotonic_time(millisecond),
                cancel_grace_ms = Grace, output = Output,
                max_packet = MaxPacket, max_output = MaxOutput, framer = Framer,
                max_atoms = MaxAtoms, send_allow = SendAllow, handles = Handles,
                callbacks = py_callback_runs:new(MaxCallbacks),
                streams = Streams,
                follow_log_level = maps:get(log_level_follows, Config, false)}}.

%% The OTP logger's level may have changed while the port started, before
%% the pool knew this worker: the pool tells registered workers only.
caught_up_log_level(#{python_log_level := Started}, #state{follow_log_level = true} = State) ->
    case logger:get_primary_config() of
        #{level := Started} -> State;
        #{level := Now} -> send_queued([pyport_wire:log_level(Now)], State)
    end;
caught_up_log_level(_, State) ->
    State.

port_os_pid(Port) ->
    case erlang:port_info(Port, os_pid) of
        {os_pid, P} -> P;
        undefined -> undefined
    end.

handle_packet({result, Ref, {handles, Value, Ns}},
              #state{index = Index, port = Port, pending = Pending, by_caller = ByCaller,
                     handles = Handles} = State) ->
    %% A result that carries object handles (py_handle). Streams end with
    %% stream_end: a result naming one is a fault, whatever it carries.
    case ets:lookup(Pending, Ref) of
        [{Ref, {stream, _, _}} = Stream] ->
            py_stream_route:fault(Stream, unexpected_result, stream_tables(State));
        _ ->
            case py_handle:routed(Ref, Value, Ns, Pending, ByCaller, {Index, Handles}) of
                [] -> ok;
                Drop -> release_now(Port, Drop)
            end
    end;
handle_packet({result, Ref, Result}, #state{pending = Pending, by_caller = ByCaller} = State) ->
    %% {cancelled, _}: the caller timed out or died and Python has now
    %% answered the cancel; no entry: a spawned task or a lost race. Either
    %% way the reply has nowhere to go.
    case ets:take(Pending, Ref) of
        [{Ref, Caller}] when is_pid(Caller) ->
            Ref ! {Ref, Result},
            true = ets:delete(ByCaller, {Caller, Ref}),
            ok;
        [{Ref, {cancelled, _}}] -> ok;
        [{Ref, {stream, _, _}} = Stream] ->
            %% Streams end with stream_end; a result for one is a fault.
            py_stream_route:fault(Stream, unexpected_result, stream_tables(State));
        [] -> ok
    end;
handle_packet({stream_data, Ref, Items}, State) ->
    py_stream_route:data(Ref, Items, stream_tables(State));
handle_packet({stream_end, Ref, End}, State) ->
    py_stream_route:ended(Ref, End, stream_tables(State));
handle_packet({log, Level, Logger, Message}, #state{index = Index}) ->
    pyport_log:record(Level, Logger, Message, Index);
handle_packet({output, Stream, Line}, #state{index = Index, output = Mode}) ->
    pyport_log:output(Stream, Line, Index, Mode);
handle_packet({Kind, _, _, _} = Request, State) when Kind =:= call; Kind =:= send ->
    serve(Request, State);
handle_packet({Kind, _, _} = Request, State) when Kind =:= whereis; Kind =:= send;
                                                  Kind =:= registered ->
    serve(Request, State);
handle_packet({call_cancel, _} = Request, State) ->
    serve(Request, State);
handle_packet(Actor, #state{pending = Pending, by_caller = ByCaller, index = Index})
  when element(1, Actor) =:= actor_started; element(1, Actor) =:= actor_ack;
       element(1, Actor) =:= actor_reply ->
    %% An actor's own traffic goes to its proxy (py_actor).
    case py_actor_route:route(Actor, Pending, ByCaller) of
        ok -> ok;
        malformed -> pyport_log:protocol_fault(Actor, Index)
    end;
handle_packet(Other, #state{index = Index}) ->
    %% bad_packet, unknown_message, or one the port should not send now.
    pyport_log:protocol_fault(Other, Index).

stream_tables(#state{pending = Pending, by_caller = ByCaller, streams = Streams}) ->
    {Pending, ByCaller, Streams}.

serve(Request, #state{index = Index, port = Port, max_packet = Max, by_caller = ByCaller,
                      send_allow = Allow, callbacks = Callbacks}) ->
    py_callback:serve(Request, #{worker => self(), port => Port, max_packet => Max},
                      py_callback:send_policy(Allow, ByCaller), Callbacks, Index).

%% Handles the frames of one read in order; a frame that breaks the
%% stream ends the port there.
frames([], State) ->
    {noreply, State};
frames([Frame | Frames], #state{index = Index, max_output = MaxOutput,
                                max_atoms = MaxAtoms} = State) ->
    case pyport_atoms:decode(Frame, MaxOutput, Index, MaxAtoms) of
        {ok, Packet, _Created} ->
            handle_packet(Packet, State),
            frames(Frames, State);
        {refused, Reason, Id} ->
            frames(Frames, atoms_refused(Reason, Id, Frame, State));
        {broken, Reason} ->
            bad_output(Reason, State)
    end.

%% A frame that would create more atoms than the loop has left: a result
%% becomes its task's error, anything else is dropped; the stream itself
%% is fine. The first ten are logged, then one in a thousand, so that a
%% flood of tiny frames does not flood the log.
atoms_refused(Reason, Id, Frame, #state{index = Index, pending = Pending,
                                        max_atoms = MaxAtoms,
                                        atoms_refused = Count0} = State) ->
    Routed = case Id of
                 {ok, Ref} ->
                     case ets:take(Pending, Ref) of
                         [{Ref, Caller}] when is_pid(Caller) ->
                             Ref ! {Ref, {error, {atom_limit, MaxAtoms}}},
                             true;
                         [{Ref, {stream, _, _}} = Stream] ->
                             py_stream_route:fault(Stream, {atom_limit, MaxAtoms},
                                                   stream_tables(State)),
                             true;
                         _ ->
                             false
                     end;
                 error ->
                     false
             end,
    Count = Count0 + 1,
    case Count =< 10 orelse Count rem 1000 =:= 0 of
        true -> pyport_log:atoms_refused(Reason, Routed, Frame, Count, Index);
        false -> ok
    end,
    State#state{atoms_refused = Count}.

%% The port wrote what cannot be a packet from our port code: whatever
%% else it writes cannot be trusted either. Closing it makes its GIL-free
%% watcher SIGKILL the process group (as in unresponsive/2).
bad_output(Reason, #state{index = Index, os_pid = OsPid, port = Port,
                          framer = Framer} = State) ->
    pyport_log:bad_output(Reason, pyport_framer:buffered(Framer), OsPid, Index),
    pyport_port:close(Port),
    kill_process_group(OsPid),
    stopped({killed, bad_output}, State).

port_exited(Status, #state{os_pid = OsPid} = State) ->
    %% The port's own children (Python subprocesses) share its process
    %% group; a port killed by a signal could not take them along.
    kill_process_group(OsPid),
    stopped(Status, State).

%% Fails every pending caller with Status and stops the worker.
stopped(Status, #state{index = Index, pending = Pending, os_pid = OsPid} = State) ->
    Entries = ets:tab2list(Pending),
    Failed = [Ref || {Ref, Caller} <- Entries, is_pid(Caller)],
    true = ets:delete_all_objects(Pending),
    py_stream_route:exited(Entries, {python_exit, Status}),
    true = ets:delete_all_objects(State#state.by_caller),
    lists:foreach(fun(Ref) ->
                          Ref ! {Ref, {error, {python_exit, Status}}}
                  end, Failed),
    logger:error("pyport loop ~p (OS pid ~tp) exited with ~tp; "
                 "~b pending task(s) failed",
                 [Index, OsPid, Status, length(Failed)],
                 #{pyport_loop => Index}),
    {stop, {python_exit, Status}, State#state{port = undefined}}.

arm_overdue(false, State) ->
    State;
arm_overdue(KillAt, #state{overdue_timer = Timer} = State) ->
    State#state{overdue_timer = pyport_overdue:arm(KillAt, Timer)}.

%% The port is making progress but has left some cancels unanswered for
%% long: those tasks (ignoring their cancel) cost themselves, not the loop.
forget_overdue(#state{index = Index, pending = Pending, cancel_grace_ms = Grace} = State) ->
    case pyport_overdue:forget(Pending, erlang:monotonic_time(millisecond), Grace) of
        0 ->
            ok;
        N ->
            logger:warning("pyport loop ~p: ~b cancelled task(s) still not finished "
                           "long after the cancel while the port keeps serving; "
                           "forgetting them", [Index, N], #{pyport_loop => Index})
    end,
    State.

%% Python has not answered N cancels within cancel_grace_ms: the port is
%% killed, its callers get {python_exit, {killed, unresponsive}}, and the
%% supervisor starts a fresh one.
unresponsive(N, #state{index = Index, os_pid = OsPid, port = Port,
                       cancel_grace_ms = Grace} = State) ->
    logger:error("pyport loop ~p (OS pid ~tp): ~b cancelled task(s) not "
                 "finished ~b ms after the cancel (Python ignores "
                 "cancellation or is stuck); killing the port",
                 [Index, OsPid, N, Grace], #{pyport_loop => Index}),
    %% The port ends itself: its GIL-free watcher sees the hang-up and,
    %% as Python does not read it, SIGKILLs the port's process group
    %% (src/lifeline.rs).
    pyport_port:close(Port),
    stopped({killed, unresponsive}, State).

%% SIGKILLs what is left of the exited port's process group (the port
%% makes itself a group leader with setsid, so the group id is its pid).
%% Nothing is there after a clean exit: the port kills its group itself.
%% This one kill needs the shell: the port that would do it is dead, and
%% the BEAM has no kill(2). (`env kill`: the external kill(1), which takes
%% `--`; dash's built-in does not.)
kill_process_group(OsPid) when is_integer(OsPid) ->
    _ = os:cmd("env kill -KILL -- -" ++ integer_to_list(OsPid) ++ " 2>/dev/null"),
    ok;
kill_process_group(_) ->
    ok.

%% Never suspends the worker on a busy port: a worker stuck there could
%% not route results, notice the port's exit or judge it unresponsive.
send_packet(Port, Packet) ->
    try erlang:port_command(Port, Packet, [nosuspend]) of
        true -> ok;
        false -> busy
    catch
        error:badarg -> closed
    end.

%% Cancels go after those already waiting, in order; what the port does
%% not take now is retried shortly.
send_cancels(Refs, State) ->
    send_queued([pyport_wire:cancel(Ref) || Ref <- Refs], State).

%% Handles whose owner died: the port drops them (after the cancels).
release_handles([], State) ->
    State;
release_handles(Ns, State) ->
    send_queued([pyport_wire:obj_release(Ns)], State).

%% From handle_packet/2, which cannot queue: a port too busy to take the
%% release now gets it through the backlog.
release_now(Port, Ns) ->
    case send_packet(Port, pyport_wire:obj_release(Ns)) of
        busy -> gen_server:cast(self(), {release_handles, Ns});
        _ -> ok
    end.

%% Packets that go after those already waiting, in order.
send_queued(Packets, #state{backlog = Backlog, backlog_timer = Timer} = State) ->
    Queued = lists:foldl(fun queue:in/2, Backlog, Packets),
    case Timer of
        undefined -> flush_backlog(Queued, State#state{backlog = queue:new()});
        _ -> State#state{backlog = Queued}
    end.

%% Writes the queued cancels in batches, each one port_command of many
%% frames (the framing is ours, so frames can share a write): 10,000 dying
%% callers cost a few writes, not 10,000.
flush_backlog(Backlog, #state{port = Port} = State) ->
    case queue:is_empty(Backlog) of
        true ->
            State;
        false ->
            {Batch, Rest} = case queue:len(Backlog) > ?CANCEL_BATCH of
                                true -> queue:split(?CANCEL_BATCH, Backlog);
                                false -> {Backlog, queue:new()}
                            end,
            case send_packet(Port, queue:to_list(Batch)) of
                ok ->
                    flush_backlog(Rest, State);
                busy ->
                    TRef = erlang:start_timer(?BACKLOG_RETRY_MS, self(), retry_backlog),
                    State#state{backlog = Backlog, backlog_timer = TRef};
                closed ->
                    %% The port is gone, and its tasks with it; its exit
                    %% follows.
                    State
            end
    end.

drain(#state{port = Port, framer = Framer} = State, Deadline) ->
    receive
        {Port, {data, Bin}} ->
            case pyport_framer:feed(Bin, Framer) of
                {ok, Frames, Framer1} ->
                    State1 = State#state{framer = Framer1},
                    case frames(Frames, State1) of
                        {noreply, State2} -> drain(State2, Deadline);
                        {stop, _, _} -> ok
                    end;
                {error, _} ->
                    pyport_port:close(Port)
            end;
        {Port, {exit_status, _}} ->
            ok;
        {'EXIT', Port, _} ->
            ok
    after max(0, Deadline - erlang:monotonic_time(millisecond)) ->
        pyport_port:close(Port)
    end.
