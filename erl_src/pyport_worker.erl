%% Owns one pyport OS process (one Python interpreter, one asyncio loop)
%% from the moment it is ready (pyport_port opens it and waits for the
%% handshake) to its end.
%%
%% Callers write task packets to the port themselves (see pyport_calls);
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
-module(pyport_worker).
-behaviour(gen_server).

-include("pyport_loop.hrl").

%% API.
-export([start_link/1]).

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
    index :: pyport_calls:loop_index(),
    port :: port() | undefined,
    %% The loop as callers see it (pyport_calls owns its tables).
    loop :: #py_loop{},
    os_pid :: integer() | undefined,
    cancel_grace_ms :: non_neg_integer(),
    %% The one timer armed for the earliest cancelled-task deadline.
    overdue_timer :: pyport_overdue:timer(),
    %% When the port last sent anything: a port still sending is making
    %% progress and is not killed for cancels it has yet to answer.
    last_output :: integer(),
    %% Since when the port has refused every write of the backlog (none
    %% taken since): a port that does not read makes no progress, whatever
    %% it sends.
    busy_since :: integer() | undefined,
    %% Packets the port was too busy to take (Python not reading): cancels,
    %% releases, answers; oldest first, and the timer that retries them.
    backlog = queue:new() :: queue:queue(iodata()),
    backlog_len = 0 :: non_neg_integer(),
    %% Set once the backlog went over ?MAX_BACKLOG (the kill is on its way).
    overflowed = false :: boolean(),
    backlog_timer :: reference() | undefined,
    %% The largest frame accepted from the port (max_output_packet).
    max_output :: pos_integer(),
    %% The port's output stream, split into frames.
    framer :: pyport_framer:framer(),
    %% The loop's atom budget (pyport_atoms counts what is used).
    max_atoms :: non_neg_integer(),
    %% Frames refused for atoms so far: only some are logged.
    atoms_refused = 0 :: non_neg_integer(),
    %% Object handles and their owners (pyport_handle).
    handles :: pyport_handle:tables(),
    %% Which module takes which packet (pyport_route), and what it gets.
    routes :: pyport_route:table(),
    context :: pyport_route:context(),
    %% python_log_level unset: Python's level follows the OTP logger's
    %% (the pool tells of changes).
    follow_log_level = false :: boolean()
}).

%% How long a stopping worker lets Python cancel its tasks and exit
%% before it closes the port (EOF then ends the process anyway).
-define(STOP_GRACE_MS, 2000).
%% How many queued packets (cancels) go out in one write.
-define(CANCEL_BATCH, 4096).

%% The modules that take Python's packets, besides results (pyport_route).
-define(ROUTES, [pyport_stream_route, pyport_actor_route, pyport_log, pyport_serve]).

%% How soon the worker retries cancels a busy port did not take.
-define(BACKLOG_RETRY_MS, 20).
%% The most packets that wait for a port that does not read: more means
%% Python keeps asking (requests from a thread, say) while its loop never
%% reads the answers, and the port is killed as unresponsive rather than
%% let the node's memory grow with what it will never read. 10,000 dying
%% callers' cancels fit many times over.
-define(MAX_BACKLOG, 100000).

%% API.

-spec start_link(pyport_calls:loop_index()) -> {ok, pid()} | ignore | {error, term()}.
start_link(Index) ->
    gen_server:start_link(?MODULE, Index, []).

%% gen_server.

-spec init(pyport_calls:loop_index())
    -> {ok, #state{}, {continue, {frames, [binary()]}}} | {stop, term()}.
init(Index) ->
    %% Port exits must arrive as messages, and a shutdown from the
    %% supervisor must run terminate/2 so that Python gets its `stop`.
    process_flag(trap_exit, true),
    case pyport_config:loop(Index) of
        %% A venv with requirements is made and filled first (pyport_venv).
        {ok, Config0} ->
            case pyport_venv:ensure(Index, Config0) of
                {ok, Config} -> start_port(Index, Config);
                {error, Reason} -> {stop, {venv_failed, Reason}}
            end;
        {error, Reason} -> {stop, Reason}
    end.

-spec handle_call(term(), gen_server:from(), #state{})
    -> {reply, ok | {error, {unknown_call, term()}}, #state{}}.
handle_call(sync, _From, State) ->
    %% An active stream's cancel: what came before it has been handled.
    {reply, ok, State};
handle_call(Request, _From, State) ->
    {reply, {error, {unknown_call, Request}}, State}.

-spec handle_cast(term(), #state{}) -> {noreply, #state{}}.
handle_cast({cancelled, KillAt}, State) when is_integer(KillAt) ->
    %% A caller gave up on a task and asked Python to cancel it; Python
    %% has until KillAt to answer (see pyport_overdue).
    {noreply, arm_overdue(KillAt, State)};
handle_cast({queue, Packets}, State) when is_list(Packets) ->
    %% Packets the busy port did not take from a writer that could not
    %% wait (pyport_calls:send/2): a caller's cancel, an owner's release,
    %% an answer to Python; the worker sends them later, in order.
    {noreply, send_queued(Packets, State)};
handle_cast({monitor, Pid}, #state{loop = Loop} = State) when is_pid(Pid) ->
    ok = pyport_calls:monitored(Loop, Pid),
    {noreply, State};
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
handle_info({'DOWN', MRef, process, Pid, _}, #state{loop = Loop} = State) ->
    %% Kept as cancelled until Python answers, so that a call that
    %% ignores the cancel is noticed.
    Marked = pyport_calls:caller_down(Loop, Pid, MRef),
    State1 = send_queued([pyport_wire:cancel(Ref) || {Ref, _} <- Marked], State),
    State2 = release_handles(pyport_handle:owner_down(Pid, State#state.handles), State1),
    {noreply, lists:foldl(fun({_, KillAt}, S) -> arm_overdue(KillAt, S) end,
                          State2, Marked)};
handle_info({timeout, TRef, retry_backlog},
            #state{backlog_timer = TRef, backlog = Backlog, backlog_len = Len} = State) ->
    {noreply, flush_backlog(Backlog, Len, State#state{backlog = queue:new(),
                                                      backlog_timer = undefined})};
handle_info(backlog_full, #state{port = Port} = State) when Port =/= undefined ->
    backlog_full(State);
handle_info({timeout, TRef, overdue_check},
            #state{overdue_timer = {TRef, _}, loop = #py_loop{pending = Pending},
                   cancel_grace_ms = Grace} = State0) ->
    State = State0#state{overdue_timer = undefined},
    case pyport_overdue:check(Pending, progress(State), Grace) of
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
    _ = case pyport_calls:try_write(Port, pyport_wire:stop()) of
            ok -> drain(State, pyport_calls:deadline(?STOP_GRACE_MS));
            %% Python is not reading: a `stop` would never be read either.
            busy -> pyport_port:close(Port);
            closed -> ok
        end,
    restarted(State).

%% restart_loop/1 marks the loop restarting before it stops this worker
%% (py_pool): the calls Python did not answer (submitted as it stopped,
%% or not cancelled within the grace) are `cancelled`, as restart_loop
%% documents, not a dead worker. Any other stop leaves them worker_down.
restarted(#state{index = Index, loop = Loop}) ->
    case pyport_registry:lookup(Index) of
        restarting ->
            _ = pyport_calls:port_exited(Loop, cancelled),
            ok;
        _ ->
            ok
    end.

%% Internal.

-spec start_port(pyport_calls:loop_index(), pyport_config:config())
    -> {ok, #state{}, {continue, {frames, [binary()]}}} | {stop, term()}.
start_port(Index, Config) ->
    case pyport_port:open(Index, Config) of
        {ok, Port, Info, Framer, Frames} ->
            %% (A port that died meanwhile is noticed by its exit status,
            %% like any crash.)
            Handles = pyport_handle:new(maps:get(max_handles, Config),
                                        maps:get(max_handles_per_owner, Config)),
            _ = pyport_calls:try_write(Port, pyport_wire:setup(self(), Index,
                                                    pyport_handle:setup_info(Handles))),
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
    OsPid = case Info of
                #{os_pid := P} when is_integer(P) -> P;
                _ -> port_os_pid(Port)
            end,
    Loop = pyport_calls:new(Index, Port, Info,
                            #{max_pending => MaxPending, max_packet => MaxPacket,
                              cancel_grace_ms => Grace, handles => Handles,
                              streams => pyport_stream_route:new_table(), os_pid => OsPid,
                              stats => pyport_ops_stats:new()}),
    ok = pyport_registry:register_loop(Index, Loop),
    Context = #{index => Index, loop => Loop, port => Port, max_packet => MaxPacket,
                output => Output,
                send_policy => py_callback:send_policy(SendAllow, pyport_calls:callers(Loop)),
                %% The callbacks Python's calls run now (bounded: max_callbacks).
                callbacks => pyport_callback_runs:new(MaxCallbacks)},
    {ok, #state{index = Index, port = Port, loop = Loop, os_pid = OsPid,
                routes = pyport_route:table(?ROUTES), context = Context,
                last_output = erlang:monotonic_time(millisecond),
                cancel_grace_ms = Grace, max_output = MaxOutput, framer = Framer,
                max_atoms = MaxAtoms, handles = Handles,
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

handle_packet({result, Ref, Result}, #state{index = Index, loop = Loop,
                                          handles = Handles}) ->
    %% Streams end with stream_end: a result naming one is a fault,
    %% whatever it carries. A result carrying object handles is
    %% pyport_handle's to route; one for a cancelled call (the caller timed
    %% out or died, Python has now answered the cancel), a spawned task or
    %% a lost race has nowhere to go.
    case {pyport_calls:take(Loop, Ref), Result} of
        {{stream, _, _} = Stream, _} ->
            pyport_stream_route:fault(Loop, Ref, Stream, unexpected_result);
        {Taken, {handles, Value, Ns}} ->
            case pyport_handle:routed(Taken, Ref, Value, Ns, {Index, Handles}) of
                [] -> ok;
                Drop -> _ = pyport_calls:send(Loop, pyport_wire:obj_release(Drop)), ok
            end;
        {{call, _}, _} ->
            Ref ! {Ref, Result},
            ok;
        _ ->
            ok
    end;
handle_packet(Packet, #state{index = Index, routes = Routes, context = Context}) ->
    case pyport_route:route(Packet, Routes, Context) of
        ok -> ok;
        %% bad_packet, unknown_message, one the port should not send now,
        %% or one whose fields are wrong.
        _ -> pyport_log:protocol_fault(Packet, Index)
    end.

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
atoms_refused(Reason, Id, Frame, #state{index = Index, loop = Loop,
                                        max_atoms = MaxAtoms,
                                        atoms_refused = Count0} = State) ->
    Routed = case Id of
                 {ok, Ref} ->
                     case pyport_calls:take(Loop, Ref) of
                         {call, _} ->
                             Ref ! {Ref, {error, {atom_limit, MaxAtoms}}},
                             true;
                         {stream, _, _} = Stream ->
                             pyport_stream_route:fault(Loop, Ref, Stream, {atom_limit, MaxAtoms}),
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
stopped(Status, #state{index = Index, loop = Loop, os_pid = OsPid} = State) ->
    Failed = pyport_calls:port_exited(Loop, {python_exit, Status}),
    logger:error("pyport loop ~p (OS pid ~tp) exited with ~tp; "
                 "~b pending task(s) failed",
                 [Index, OsPid, Status, Failed],
                 #{pyport_loop => Index}),
    {stop, {python_exit, Status}, State#state{port = undefined}}.

arm_overdue(false, State) ->
    State;
arm_overdue(KillAt, #state{overdue_timer = Timer} = State) ->
    State#state{overdue_timer = pyport_overdue:arm(KillAt, Timer)}.

%% The port is making progress but has left some cancels unanswered for
%% long: those tasks (ignoring their cancel) cost themselves, not the loop.
forget_overdue(#state{index = Index, loop = #py_loop{pending = Pending},
                      cancel_grace_ms = Grace} = State) ->
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
    %% The watcher sees no hang-up while the port's input pipe still holds
    %% what Python never read (a port refusing input): the group is
    %% killed from here too (a no-op where the watcher was first).
    kill_process_group(OsPid),
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

%% The port's last sign of progress: its last packet, unless it has
%% refused input since.
progress(#state{last_output = LastOutput, busy_since = undefined}) ->
    LastOutput;
progress(#state{last_output = LastOutput, busy_since = Since}) ->
    min(LastOutput, Since).

%% Handles whose owner died: the port drops them (after the cancels).
release_handles([], State) ->
    State;
release_handles(Ns, State) ->
    send_queued([pyport_wire:obj_release(Ns)], State).

%% Packets that go after those already waiting, in order.
send_queued(Packets, #state{backlog = Backlog, backlog_len = Len0,
                            backlog_timer = Timer} = State) ->
    Queued = lists:foldl(fun queue:in/2, Backlog, Packets),
    Len = Len0 + length(Packets),
    case Timer of
        undefined -> flush_backlog(Queued, Len, State#state{backlog = queue:new()});
        _ -> bounded(State#state{backlog = Queued, backlog_len = Len})
    end.

%% Over ?MAX_BACKLOG the worker kills the port (backlog_full/1), once.
bounded(#state{backlog_len = Len, overflowed = false} = State) when Len > ?MAX_BACKLOG ->
    self() ! backlog_full,
    State#state{overflowed = true};
bounded(State) ->
    State.

%% Python sent more requests than ?MAX_BACKLOG answers that its port
%% would not read: the port is stuck as surely as one that ignores its
%% cancels, and goes the same way.
backlog_full(#state{index = Index, os_pid = OsPid, port = Port,
                    backlog_len = Len} = State) ->
    logger:error("pyport loop ~p (OS pid ~tp): ~b packets wait for a port that "
                 "does not read its input (Python is not reading); killing the port",
                 [Index, OsPid, Len], #{pyport_loop => Index}),
    pyport_port:close(Port),
    kill_process_group(OsPid),
    stopped({killed, unresponsive}, State#state{backlog = queue:new(), backlog_len = 0}).

%% Writes the queued cancels in batches, each one port_command of many
%% frames (the framing is ours, so frames can share a write): 10,000 dying
%% callers cost a few writes, not 10,000.
flush_backlog(Backlog, Len, #state{port = Port} = State) ->
    case queue:is_empty(Backlog) of
        true ->
            State#state{busy_since = undefined, backlog_len = 0};
        false ->
            {Batch, Rest, Left} = case Len > ?CANCEL_BATCH of
                                      true ->
                                          {B, R} = queue:split(?CANCEL_BATCH, Backlog),
                                          {B, R, Len - ?CANCEL_BATCH};
                                      false ->
                                          {Backlog, queue:new(), 0}
                                  end,
            case pyport_calls:try_write(Port, queue:to_list(Batch)) of
                ok ->
                    %% The port reads: slowly, perhaps, but it progresses.
                    flush_backlog(Rest, Left, State#state{busy_since = undefined});
                busy ->
                    TRef = erlang:start_timer(?BACKLOG_RETRY_MS, self(), retry_backlog),
                    Since = case State#state.busy_since of
                                undefined -> erlang:monotonic_time(millisecond);
                                T -> T
                            end,
                    bounded(State#state{backlog = Backlog, backlog_len = Len,
                                        backlog_timer = TRef, busy_since = Since});
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
    after pyport_calls:after_ms(Deadline) ->
        pyport_port:close(Port)
    end.
