%% Owns one pyport OS process (one Python interpreter, one asyncio loop):
%% its start (the handshake and the start-up stderr file), its life and
%% its end.
%%
%% Callers write task packets to the port themselves (see py_event_task);
%% this process decodes what the port sends (pyport_wire), routes each
%% result to the caller's reply alias, hands log records and output lines
%% to pyport_log and Python's `erlang.call`, `erlang.send` and
%% `erlang.whereis` to py_callback, cancels the tasks of callers that die
%% (and has the port killed when Python does not answer, see
%% pyport_overdue), and, when the port exits, fails every
%% pending task at once and stops so that its supervisor starts a fresh
%% port.
-module(py_event_worker).
-behaviour(gen_server).

-include("py_event_loop.hrl").

%% API.
-export([start_link/1]).

%% gen_server.
-export([init/1]).
-export([handle_call/3]).
-export([handle_cast/2]).
-export([handle_info/2]).
-export([terminate/2]).

-record(state, {
    index :: pos_integer(),
    port :: port() | undefined,
    pending :: ets:tid(),
    monitored :: ets:tid(),
    os_pid :: integer() | undefined,
    cancel_grace_ms :: non_neg_integer(),
    %% The one timer armed for the earliest cancelled-task deadline.
    overdue_timer :: pyport_overdue:timer(),
    %% Where Python's stdout/stderr lines go.
    output :: pyport_config:output(),
    %% The largest packet the port accepts (callback replies included).
    max_packet :: pos_integer()
}).

%% How long a stopping worker lets Python cancel its tasks and exit
%% before it closes the port (EOF then ends the process anyway).
-define(STOP_GRACE_MS, 2000).

%% API.

-spec start_link(pos_integer()) -> {ok, pid()} | ignore | {error, term()}.
start_link(Index) ->
    gen_server:start_link(?MODULE, Index, []).

%% gen_server.

-spec init(pos_integer()) -> {ok, #state{}} | {stop, term()}.
init(Index) ->
    %% Port exits must arrive as messages, and a shutdown from the
    %% supervisor must run terminate/2 so that Python gets its `stop`.
    process_flag(trap_exit, true),
    case pyport_config:loop(Index) of
        {ok, Config} -> start_port(Index, Config);
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
handle_cast({monitor, Pid}, #state{monitored = Monitored} = State)
  when is_pid(Pid) ->
    %% Callers ask before their first task, and may ask twice in a race.
    case ets:member(Monitored, Pid) of
        true -> ok;
        false -> true = ets:insert(Monitored, {Pid, erlang:monitor(process, Pid)})
    end,
    {noreply, State};
handle_cast(_Msg, State) ->
    {noreply, State}.

-spec handle_info(term(), #state{})
    -> {noreply, #state{}} | {stop, {python_exit, term()}, #state{}}.
handle_info({Port, {data, Bin}}, #state{port = Port} = State) ->
    handle_packet(pyport_wire:decode(Bin), State),
    {noreply, State};
handle_info({Port, {exit_status, Status}}, #state{port = Port} = State) ->
    port_exited(Status, State);
handle_info({'EXIT', Port, Reason}, #state{port = Port} = State) ->
    %% Without an exit status first: the port driver itself failed.
    port_exited(Reason, State);
handle_info({'DOWN', MRef, process, Pid, _},
            #state{port = Port, pending = Pending, monitored = Monitored,
                   cancel_grace_ms = Grace} = State) ->
    true = ets:delete_object(Monitored, {Pid, MRef}),
    Refs = ets:select(Pending, [{{'$1', Pid}, [], ['$1']}]),
    %% Kept as cancelled until Python answers, so that a task that
    %% ignores the cancel is noticed.
    KillAts = [pyport_overdue:mark(Pending, Ref, Grace) || Ref <- Refs],
    _ = [send_packet(Port, pyport_wire:cancel(Ref)) || Ref <- Refs],
    {noreply, lists:foldl(fun arm_overdue/2, State, KillAts)};
handle_info({timeout, TRef, overdue_check},
            #state{overdue_timer = {TRef, _}, pending = Pending} = State0) ->
    State = State0#state{overdue_timer = undefined},
    case pyport_overdue:check(Pending) of
        none -> {noreply, State};
        {wait, KillAt} -> {noreply, arm_overdue(KillAt, State)};
        {overdue, N} -> unresponsive(N, State)
    end;
handle_info(_Info, State) ->
    {noreply, State}.

-spec terminate(term(), #state{}) -> ok.
terminate(_Reason, #state{port = undefined}) ->
    ok;
terminate(_Reason, #state{port = Port} = State) ->
    %% Python cancels its tasks on `stop`; routing the replies that come
    %% back while it does lets callers see `cancelled`, not a dead worker.
    case send_packet(Port, pyport_wire:stop()) of
        ok -> drain(State, erlang:monotonic_time(millisecond) + ?STOP_GRACE_MS);
        closed -> ok
    end.

%% Internal.

-spec start_port(pos_integer(), pyport_config:config()) -> {ok, #state{}} | {stop, term()}.
start_port(Index, #{start_timeout := StartTimeout} = Config) ->
    Exe = pyport_config:executable(),
    %% Until Python captures its fds 1 and 2, what the port writes there
    %% (a fatal error while Python initialises, say) goes to this file,
    %% so that a failed start can say why.
    StderrFile = stderr_file(Index),
    Options = [{packet, 4}, binary, nouse_stdio, exit_status,
               {args, pyport_config:port_args(Config#{stderr_file => StderrFile})}],
    try open_port({spawn_executable, Exe}, Options) of
        Port ->
            case await_ready(Port, Index, Config, deadline(StartTimeout)) of
                {ok, Info} ->
                    startup_output(StderrFile, Index, Config),
                    %% (A port that died meanwhile is noticed by its
                    %% exit status, like any crash.)
                    _ = send_packet(Port, pyport_wire:setup(self(), Index)),
                    registered(Index, Port, Info, Config);
                {error, Reason0} ->
                    close(Port),
                    Reason = with_stderr(Reason0, StderrFile),
                    logger:error("pyport loop ~b: the port failed to start: ~tp",
                                 [Index, Reason], #{pyport_loop => Index}),
                    {stop, {port_start_failed, Reason}}
            end
    catch
        error:Reason ->
            _ = file:delete(StderrFile),
            {stop, {port_start_failed, {open_port, Reason, Exe}}}
    end.

stderr_file(Index) ->
    Dir = case os:getenv("TMPDIR") of
              false -> "/tmp";
              "" -> "/tmp";
              D -> D
          end,
    filename:join(Dir, lists:flatten(
                         io_lib:format("pyport-~s-~b-~b.stderr",
                                       [os:getpid(), Index,
                                        erlang:unique_integer([positive])]))).

%% The port exited before it was ready: what it wrote says why (the last
%% 8 KiB of it).
with_stderr({exit_status, Status}, File) ->
    {exit_status, Status, read_tail(File, 8192)};
with_stderr(Reason, File) ->
    _ = file:delete(File),
    Reason.

read_tail(File, Max) ->
    Text = case file:read_file(File) of
               {ok, Bin} when byte_size(Bin) > Max ->
                   binary:part(Bin, byte_size(Bin) - Max, Max);
               {ok, Bin} ->
                   Bin;
               {error, _} ->
                   <<>>
           end,
    _ = file:delete(File),
    Text.

%% Anything written before Python's capture took over (warnings while
%% importing, say) is logged like later stderr lines.
startup_output(File, Index, #{output := Mode}) ->
    Text = read_tail(File, 65536),
    lists:foreach(fun(Line) -> pyport_log:output(stderr, Line, Index, Mode) end,
                  [L || L <- binary:split(Text, <<"\n">>, [global]), L =/= <<>>]).

deadline(infinity) -> infinity;
deadline(Ms) -> erlang:monotonic_time(millisecond) + Ms.

remaining(infinity) -> infinity;
remaining(Deadline) ->
    max(0, Deadline - erlang:monotonic_time(millisecond)).

await_ready(Port, Index, Config, Deadline) ->
    receive
        {Port, {data, Bin}} ->
            case pyport_wire:decode(Bin) of
                {ready, Info} ->
                    {ok, Info};
                {protocol_mismatch, Info} ->
                    {error, {protocol_mismatch, Info}};
                {start_failed, Reason} ->
                    %% Python started but refused to serve: a bad
                    %% python_path entry or venv, a preload that failed.
                    {error, Reason};
                {log, Level, Logger, Message} ->
                    %% Start-up diagnostics are worth keeping.
                    pyport_log:record(Level, Logger, Message, Index),
                    await_ready(Port, Index, Config, Deadline);
                {output, Stream, Line} ->
                    pyport_log:output(Stream, Line, Index, maps:get(output, Config)),
                    await_ready(Port, Index, Config, Deadline);
                {unexpected, Other} ->
                    {error, {unexpected_packet, Other}};
                Other ->
                    {error, {unexpected_packet, Other}}
            end;
        {Port, {exit_status, Status}} ->
            {error, {exit_status, Status}};
        {'EXIT', Port, Reason} ->
            {error, {port_exit, Reason}}
    after remaining(Deadline) ->
        {error, no_ready_packet_in_time}
    end.

registered(Index, Port, Info, #{max_pending := MaxPending,
                                max_packet := MaxPacket,
                                cancel_grace_ms := Grace,
                                output := Output}) ->
    Pending = ets:new(py_event_pending,
                      [set, public, {write_concurrency, true}]),
    Monitored = ets:new(py_event_monitored,
                        [set, public, {read_concurrency, true}]),
    OsPid = case Info of
                #{os_pid := P} when is_integer(P) -> P;
                _ -> port_os_pid(Port)
            end,
    Loop = #py_loop{index = Index, worker = self(), port = Port,
                    pending = Pending, monitored = Monitored,
                    max_pending = MaxPending, max_packet = MaxPacket,
                    cancel_grace_ms = Grace, os_pid = OsPid, info = Info},
    ok = py_event_loop_pool:register_loop(Index, Loop),
    {ok, #state{index = Index, port = Port, pending = Pending,
                monitored = Monitored, os_pid = OsPid,
                cancel_grace_ms = Grace, output = Output,
                max_packet = MaxPacket}}.

port_os_pid(Port) ->
    case erlang:port_info(Port, os_pid) of
        {os_pid, P} -> P;
        undefined -> undefined
    end.

handle_packet({result, Ref, Result}, #state{pending = Pending}) ->
    %% {cancelled, _}: the caller timed out or died and Python has now
    %% answered the cancel; no entry: a spawned task or a lost race. Either
    %% way the reply has nowhere to go.
    case ets:take(Pending, Ref) of
        [{Ref, Caller}] when is_pid(Caller) -> Ref ! {Ref, Result}, ok;
        [{Ref, {cancelled, _}}] -> ok;
        [] -> ok
    end;
handle_packet({log, Level, Logger, Message}, #state{index = Index}) ->
    pyport_log:record(Level, Logger, Message, Index);
handle_packet({output, Stream, Line}, #state{index = Index, output = Mode}) ->
    pyport_log:output(Stream, Line, Index, Mode);
handle_packet({Kind, _, _, _} = Request, #state{port = Port, max_packet = Max})
  when Kind =:= call; Kind =:= send ->
    py_callback:serve(Request, Port, Max);
handle_packet({Kind, _, _} = Request, #state{port = Port, max_packet = Max})
  when Kind =:= whereis; Kind =:= send ->
    py_callback:serve(Request, Port, Max);
handle_packet(Other, #state{index = Index}) ->
    %% bad_packet, unknown_message, or one the port should not send now.
    pyport_log:protocol_fault(Other, Index).

port_exited(Status, #state{os_pid = OsPid} = State) ->
    %% The port's own children (Python subprocesses) share its process
    %% group; a port killed by a signal could not take them along.
    kill_process_group(OsPid),
    stopped(Status, State).

%% Fails every pending caller with Status and stops the worker.
stopped(Status, #state{index = Index, pending = Pending, os_pid = OsPid} = State) ->
    Failed = [Ref || {Ref, Caller} <- ets:tab2list(Pending), is_pid(Caller)],
    true = ets:delete_all_objects(Pending),
    lists:foreach(fun(Ref) ->
                          Ref ! {Ref, {error, {python_exit, Status}}}
                  end, Failed),
    logger:error("pyport loop ~b (OS pid ~tp) exited with ~tp; "
                 "~b pending task(s) failed",
                 [Index, OsPid, Status, length(Failed)],
                 #{pyport_loop => Index}),
    {stop, {python_exit, Status}, State#state{port = undefined}}.

arm_overdue(false, State) ->
    State;
arm_overdue(KillAt, #state{overdue_timer = Timer} = State) ->
    State#state{overdue_timer = pyport_overdue:arm(KillAt, Timer)}.

%% Python has not answered N cancels within cancel_grace_ms: the port is
%% killed, its callers get {python_exit, {killed, unresponsive}}, and the
%% supervisor starts a fresh one.
unresponsive(N, #state{index = Index, os_pid = OsPid, port = Port,
                       cancel_grace_ms = Grace} = State) ->
    logger:error("pyport loop ~b (OS pid ~tp): ~b cancelled task(s) not "
                 "finished ~b ms after the cancel (Python ignores "
                 "cancellation or is stuck); killing the port",
                 [Index, OsPid, N, Grace], #{pyport_loop => Index}),
    %% The port ends itself: its GIL-free watcher sees the hang-up and,
    %% as Python does not read it, SIGKILLs the port's process group
    %% (src/lifeline.rs).
    close(Port),
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

send_packet(Port, Packet) ->
    try erlang:port_command(Port, Packet) of
        true -> ok
    catch
        error:badarg -> closed
    end.

drain(#state{port = Port} = State, Deadline) ->
    receive
        {Port, {data, Bin}} ->
            handle_packet(pyport_wire:decode(Bin), State),
            drain(State, Deadline);
        {Port, {exit_status, _}} ->
            ok;
        {'EXIT', Port, _} ->
            ok
    after remaining(Deadline) ->
        close(Port)
    end.

close(Port) ->
    try port_close(Port) of
        true -> ok
    catch
        error:badarg -> ok
    end,
    %% A closed port's last messages would otherwise sit in the mailbox.
    receive
        {'EXIT', Port, _} -> ok
    after 0 -> ok
    end.
