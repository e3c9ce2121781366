%% Owns one pyport OS process (one Python interpreter, one asyncio loop).
%%
%% Callers write task packets to the port themselves (see py_event_task);
%% this process decodes what the port sends, routes each result to the
%% caller's reply alias, forwards Python log records and output lines to
%% the OTP logger, serves Python's `erlang.call` (in a fresh process per
%% call, see py_callback), `erlang.send` and `erlang.whereis`, cancels the
%% tasks of callers that die, and, when the port exits, fails every
%% pending task at once and stops so that its supervisor starts a fresh
%% port.
-module(py_event_worker).
-behaviour(gen_server).

-include("py_event_loop.hrl").

%% API.
-export([start_link/1]).
-export([executable/0]).
-export([port_args/1]).

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
    %% The one timer armed for the earliest cancelled-task deadline:
    %% {TimerRef, KillAt} (monotonic milliseconds).
    overdue_timer :: {reference(), integer()} | undefined,
    %% Set when this worker killed its port on purpose: what callers are
    %% told instead of the bare exit status.
    killed :: undefined | unresponsive,
    %% Where Python's stdout/stderr lines go.
    output = logger :: output(),
    %% The largest packet the port accepts (callback replies included).
    max_packet = 67108864 :: pos_integer()
}).

-type output() :: logger | stderr.

-type config() :: #{python_path := [file:filename_all()],
                    max_packet := pos_integer(),
                    max_memory_mb := pos_integer() | infinity,
                    max_pending := pos_integer() | infinity,
                    cancel_grace_ms := non_neg_integer(),
                    start_timeout := timeout(),
                    venv := file:filename_all() | undefined,
                    preload := [atom() | binary() | string()],
                    max_atoms := non_neg_integer(),
                    python_log_level := logger:level() | all | none | undefined,
                    output := output()}.
-export_type([config/0]).

%% How long a stopping worker lets Python cancel its tasks and exit
%% before it closes the port (EOF then ends the process anyway).
-define(STOP_GRACE_MS, 2000).

%% How long Python has to answer a cancel Erlang sent (deadline passed,
%% await timed out, caller died) before the worker kills the port.
-define(DEFAULT_CANCEL_GRACE_MS, 2000).
%% How long a killed port has to report its exit before the worker closes
%% it and gives up on it anyway.
-define(KILL_FALLBACK_MS, 5000).

%% API.

-spec start_link(pos_integer()) -> {ok, pid()} | ignore | {error, term()}.
start_link(Index) ->
    gen_server:start_link(?MODULE, Index, []).

%% The `executable` application variable replaces the port program; `make
%% bench` points it at `priv/pyport-echo` to measure the floor through the
%% very same Erlang side.
-spec executable() -> file:filename().
executable() ->
    case application:get_env(pyport, executable) of
        {ok, Exe} -> Exe;
        undefined -> default_executable()
    end.

default_executable() ->
    case code:priv_dir(pyport) of
        {error, bad_name} ->
            %% Not loaded as an application (e.g. an escript): the beams'
            %% directory still sits beside priv.
            Ebin = filename:dirname(code:which(?MODULE)),
            filename:join([Ebin, "..", "priv", "pyport"]);
        Priv ->
            filename:join(Priv, "pyport")
    end.

%% The command line of the port. Keys other than max_packet and
%% python_path are optional (absent: the option is left out).
-spec port_args(#{max_packet := pos_integer(),
                  python_path := [file:filename_all()],
                  max_memory_mb => pos_integer() | infinity,
                  atom() => term()}) -> [string()].
port_args(#{max_packet := MaxPacket, python_path := PythonPath} = Config) ->
    ["port", "--max-packet", integer_to_list(MaxPacket)]
        ++ case maps:get(max_memory_mb, Config, infinity) of
               infinity -> [];
               MiB -> ["--max-memory-mb", integer_to_list(MiB)]
           end
        ++ lists:append([["--path", to_list(P)] || P <- PythonPath])
        ++ case maps:get(venv, Config, undefined) of
               undefined -> [];
               Venv -> ["--venv", to_list(Venv)]
           end
        ++ lists:append([["--preload", to_list(M)]
                         || M <- maps:get(preload, Config, [])])
        ++ case maps:get(max_atoms, Config, undefined) of
               undefined -> [];
               N -> ["--max-atoms", integer_to_list(N)]
           end
        ++ case maps:get(python_log_level, Config, undefined) of
               undefined -> [];
               Level -> ["--log-level", atom_to_list(Level)]
           end
        ++ case maps:is_key(output, Config) of
               true -> ["--capture-output"];
               false -> []
           end
        ++ case maps:get(stderr_file, Config, undefined) of
               undefined -> [];
               File -> ["--stderr-file", to_list(File)]
           end.

%% gen_server.

-spec init(pos_integer()) -> {ok, #state{}} | {stop, term()}.
init(Index) ->
    %% Port exits must arrive as messages, and a shutdown from the
    %% supervisor must run terminate/2 so that Python gets its `stop`.
    process_flag(trap_exit, true),
    case config(Index) of
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
    %% has until KillAt to answer (see overdue_check/1).
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
    handle_packet(decode(Bin), State),
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
    KillAt = erlang:monotonic_time(millisecond) + Grace,
    lists:foreach(
      fun(Ref) ->
              %% Kept as cancelled until Python answers, so that a task
              %% that ignores the cancel is noticed (overdue_check/1).
              true = ets:update_element(Pending, Ref, {2, {cancelled, KillAt}}),
              send_packet(Port, {cancel, Ref})
      end, Refs),
    {noreply, case Refs of
                  [] -> State;
                  _ -> arm_overdue(KillAt, State)
              end};
handle_info({timeout, TRef, overdue_check},
            #state{overdue_timer = {TRef, _}} = State) ->
    overdue_check(State#state{overdue_timer = undefined});
handle_info({kill_fallback, Port}, #state{port = Port} = State) ->
    %% The SIGKILL did not end the port (no exit status since): closing
    %% it makes the port's GIL-free watcher end the process instead.
    close(Port),
    port_exited(not_killed, State);
handle_info(_Info, State) ->
    {noreply, State}.

-spec terminate(term(), #state{}) -> ok.
terminate(_Reason, #state{port = undefined}) ->
    ok;
terminate(_Reason, #state{port = Port} = State) ->
    %% Python cancels its tasks on `stop`; routing the replies that come
    %% back while it does lets callers see `cancelled`, not a dead worker.
    case send_packet(Port, stop) of
        ok -> drain(State, erlang:monotonic_time(millisecond) + ?STOP_GRACE_MS);
        closed -> ok
    end.

%% Internal.

%% The application environment, with the loop's own settings (the
%% `loops` map: #{Index => #{Key => Value}}) taking precedence.
config(Index) ->
    Env = fun(Key, Default) -> application:get_env(pyport, Key, Default) end,
    Global = #{python_path => Env(python_path, []),
               max_packet => Env(max_packet, 67108864),
               max_memory_mb => Env(max_memory_mb, infinity),
               max_pending => Env(max_pending, infinity),
               cancel_grace_ms => Env(cancel_grace_ms, ?DEFAULT_CANCEL_GRACE_MS),
               start_timeout => Env(start_timeout, 10000),
               venv => Env(venv, undefined),
               preload => Env(preload, []),
               max_atoms => Env(max_atoms, 10000),
               python_log_level => Env(python_log_level, undefined),
               output => Env(output, logger)},
    case loop_config(Env(loops, #{}), Index) of
        {ok, Own} ->
            Config = maps:merge(Global, Own),
            case [{Key, Value} || {Key, Value} <- maps:to_list(Config),
                                  not valid_config(Key, Value)] of
                [] -> {ok, resolve_log_level(Config)};
                [{Key, Value} | _] -> {error, {bad_config, {Key, Value}}}
            end;
        {error, _} = Error ->
            Error
    end.

loop_config(Loops, Index) when is_map(Loops) ->
    case maps:get(Index, Loops, #{}) of
        Own when is_map(Own) ->
            Known = [python_path, max_packet, max_memory_mb, max_pending,
                     cancel_grace_ms, start_timeout, venv, preload, max_atoms,
                     python_log_level, output],
            case [K || K <- maps:keys(Own), not lists:member(K, Known)] of
                [] -> {ok, Own};
                [K | _] -> {error, {bad_config, {{loops, Index, K}, maps:get(K, Own)}}}
            end;
        Other ->
            {error, {bad_config, {{loops, Index}, Other}}}
    end;
loop_config(Other, _) ->
    {error, {bad_config, {loops, Other}}}.

%% Unset: Python logs what the OTP logger would let through now.
resolve_log_level(#{python_log_level := undefined} = Config) ->
    #{level := Level} = logger:get_primary_config(),
    Config#{python_log_level := Level};
resolve_log_level(Config) ->
    Config.

valid_config(python_path, Paths) ->
    is_list(Paths) andalso lists:all(fun is_path/1, Paths);
valid_config(max_packet, N) ->
    is_integer(N) andalso N > 0;
valid_config(max_memory_mb, N) ->
    N =:= infinity orelse (is_integer(N) andalso N > 0);
valid_config(max_pending, N) ->
    N =:= infinity orelse (is_integer(N) andalso N > 0);
valid_config(cancel_grace_ms, T) ->
    is_integer(T) andalso T >= 0;
valid_config(start_timeout, T) ->
    T =:= infinity orelse (is_integer(T) andalso T > 0);
valid_config(venv, V) ->
    V =:= undefined orelse is_path(V);
valid_config(preload, Modules) ->
    is_list(Modules) andalso
        lists:all(fun(M) -> is_atom(M) orelse is_path(M) end, Modules);
valid_config(max_atoms, N) ->
    is_integer(N) andalso N >= 0;
valid_config(python_log_level, L) ->
    lists:member(L, [undefined, all, none, emergency, alert, critical, error,
                     warning, notice, info, debug]);
valid_config(output, O) ->
    O =:= logger orelse O =:= stderr.

is_path(P) when is_binary(P) -> true;
is_path(P) -> io_lib:char_list(P) andalso P =/= [].

to_list(P) when is_binary(P) -> unicode:characters_to_list(P);
to_list(P) when is_atom(P) -> atom_to_list(P);
to_list(P) -> P.

-spec start_port(pos_integer(), config()) -> {ok, #state{}} | {stop, term()}.
start_port(Index, #{start_timeout := StartTimeout} = Config) ->
    Exe = executable(),
    %% Until Python captures its fds 1 and 2, what the port writes there
    %% (a fatal error while Python initialises, say) goes to this file,
    %% so that a failed start can say why.
    StderrFile = stderr_file(Index),
    Options = [{packet, 4}, binary, nouse_stdio, exit_status,
               {args, port_args(Config#{stderr_file => StderrFile})}],
    try open_port({spawn_executable, Exe}, Options) of
        Port ->
            case await_ready(Port, Index, Config, deadline(StartTimeout)) of
                {ok, Info} ->
                    startup_output(StderrFile, Index, Config),
                    %% (A port that died meanwhile is noticed by its
                    %% exit status, like any crash.)
                    _ = send_packet(Port, {setup, #{worker => self(),
                                                    loop => Index}}),
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
    lists:foreach(fun(Line) -> output(stderr, Line, Index, Mode) end,
                  [L || L <- binary:split(Text, <<"\n">>, [global]), L =/= <<>>]).

deadline(infinity) -> infinity;
deadline(Ms) -> erlang:monotonic_time(millisecond) + Ms.

remaining(infinity) -> infinity;
remaining(Deadline) ->
    max(0, Deadline - erlang:monotonic_time(millisecond)).

await_ready(Port, Index, Config, Deadline) ->
    receive
        {Port, {data, Bin}} ->
            case decode(Bin) of
                {ready, #{protocol := 1} = Info} ->
                    {ok, Info};
                {ready, Info} ->
                    {error, {protocol_mismatch, Info}};
                {start_failed, Reason} ->
                    %% Python started but refused to serve: a bad
                    %% python_path entry or venv, a preload that failed.
                    {error, Reason};
                {log, _, _, _} = Log ->
                    %% Start-up diagnostics are worth keeping.
                    log(Log, Index),
                    await_ready(Port, Index, Config, Deadline);
                {output, Stream, Line} ->
                    output(Stream, Line, Index, maps:get(output, Config)),
                    await_ready(Port, Index, Config, Deadline);
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

decode(Bin) ->
    try
        binary_to_term(Bin)
    catch
        error:badarg -> {undecodable, Bin}
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
handle_packet({log, _, _, _} = Log, #state{index = Index}) ->
    log(Log, Index);
handle_packet({output, Stream, Line}, #state{index = Index, output = Mode}) ->
    output(Stream, Line, Index, Mode);
handle_packet({call, CallId, Name, Args},
              #state{port = Port, max_packet = MaxPacket}) ->
    %% erlang.call / async_call: the callback runs in a fresh process that
    %% answers the port itself.
    _ = py_callback:spawn_call(Port, CallId, Name, Args, MaxPacket),
    ok;
handle_packet({send, CallId, Dest, Msg}, #state{port = Port}) ->
    %% erlang.send: delivered here, so that messages from one loop keep
    %% their order; the answer says whether the destination existed.
    _ = send_packet(Port, {call_reply, CallId, py_callback:deliver(Dest, Msg)}),
    ok;
handle_packet({whereis, CallId, Name}, #state{port = Port}) ->
    _ = send_packet(Port, {call_reply, CallId,
                           {ok, py_callback:whereis_name(Name)}}),
    ok;
handle_packet({send, Dest, Msg}, _State) ->
    %% Fire and forget (protocol v1): a destination that does not exist
    %% is ignored, as with `!`.
    _ = py_callback:deliver(Dest, Msg),
    ok;
handle_packet({error, {bad_packet, Reason}}, #state{index = Index}) ->
    logger:warning("pyport loop ~b could not decode a packet (bad_packet): ~tp",
                   [Index, Reason],
                   #{pyport_loop => Index});
handle_packet({error, {unknown_message, Term}}, #state{index = Index}) ->
    logger:warning("pyport loop ~b did not understand a message "
                   "(unknown_message): ~tp",
                   [Index, Term], #{pyport_loop => Index});
handle_packet(Other, #state{index = Index}) ->
    logger:warning("pyport loop ~b sent an unexpected packet: ~tp",
                   [Index, Other], #{pyport_loop => Index}).

log({log, Level, Logger, Message}, Index) ->
    Meta = #{pyport_loop => Index, python_logger => Logger},
    case unicode:characters_to_binary(Message) of
        Text when is_binary(Text) ->
            logger:log(level(Level), "~ts", [Text], Meta);
        _ ->
            logger:log(level(Level), "~tp", [Message], Meta)
    end.

%% A line Python (or C code in the port) wrote to fd 1 or 2.
output(Stream, Line, Index, logger) ->
    Level = case Stream of
                stderr -> warning;
                _ -> info
            end,
    Meta = #{pyport_loop => Index, pyport_stream => Stream,
             python_logger => atom_to_binary(stream(Stream), utf8)},
    logger:log(Level, "~ts", [text(Line)], Meta);
output(Stream, Line, Index, stderr) ->
    io:put_chars(standard_error,
                 [io_lib:format("[pyport ~b ~s] ", [Index, stream(Stream)]),
                  text(Line), $\n]).

stream(Stream) when is_atom(Stream) -> Stream;
stream(_) -> unknown.

%% Output is bytes: UTF-8 when it is, Latin-1 otherwise, never a crash.
text(Line) when is_binary(Line) ->
    case unicode:characters_to_binary(Line) of
        Text when is_binary(Text) -> Text;
        _ -> unicode:characters_to_binary(Line, latin1)
    end;
text(Other) ->
    iolist_to_binary(io_lib:format("~tp", [Other])).

%% Python's level names, and anything unexpected, mapped onto the OTP
%% logger's levels.
level(Level) when is_binary(Level) ->
    level(string:lowercase(Level));
level(Level) when Level =:= emergency; Level =:= alert; Level =:= critical;
                  Level =:= error; Level =:= warning; Level =:= notice;
                  Level =:= info; Level =:= debug ->
    Level;
level(<<"critical">>) -> critical;
level(<<"fatal">>) -> critical;
level(<<"error">>) -> error;
level(<<"warning">>) -> warning;
level(<<"warn">>) -> warning;
level(<<"info">>) -> info;
level(<<"debug">>) -> debug;
level(fatal) -> critical;
level(warn) -> warning;
level(_) -> notice.

port_exited(ExitStatus, #state{index = Index, pending = Pending,
                               os_pid = OsPid, killed = Killed} = State) ->
    %% The port's own children (Python subprocesses) share its process
    %% group; a port killed by a signal could not take them along.
    kill_process_group(OsPid),
    Status = case Killed of
                 undefined -> ExitStatus;
                 Why -> {killed, Why}
             end,
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

%% One timer for the earliest deadline: cancels come in deadline order
%% (now + the same grace), so this rarely re-arms.
arm_overdue(KillAt, #state{overdue_timer = {_, At}} = State) when At =< KillAt ->
    State;
arm_overdue(KillAt, #state{overdue_timer = Timer} = State) ->
    _ = case Timer of
            {TRef, _} -> erlang:cancel_timer(TRef, [{async, true}, {info, false}]);
            undefined -> ok
        end,
    TRef2 = erlang:start_timer(KillAt, self(), overdue_check, [{abs, true}]),
    State#state{overdue_timer = {TRef2, KillAt}}.

%% A task Erlang cancelled (deadline passed, await timed out, caller died)
%% must be answered by Python within cancel_grace_ms. One that is not means
%% Python ignores the cancel, spins, or is stuck in a C call: the port is
%% killed, its callers get {python_exit, {killed, unresponsive}}, and the
%% supervisor starts a fresh one.
overdue_check(#state{pending = Pending, index = Index, os_pid = OsPid,
                     cancel_grace_ms = Grace} = State) ->
    KillAts = ets:select(Pending, [{{'_', {cancelled, '$1'}}, [], ['$1']}]),
    Now = erlang:monotonic_time(millisecond),
    case [At || At <- KillAts, At =< Now] of
        [] when KillAts =:= [] ->
            {noreply, State};
        [] ->
            {noreply, arm_overdue(lists:min(KillAts), State)};
        Overdue ->
            logger:error("pyport loop ~b (OS pid ~tp): ~b cancelled task(s) not "
                         "finished ~b ms after the cancel (Python ignores "
                         "cancellation or is stuck); killing the port",
                         [Index, OsPid, length(Overdue), Grace],
                         #{pyport_loop => Index}),
            kill_os_process(OsPid),
            %% The exit status arrives next and fails the other callers.
            _ = erlang:send_after(?KILL_FALLBACK_MS, self(),
                                  {kill_fallback, State#state.port}),
            {noreply, State#state{killed = unresponsive}}
    end.

kill_os_process(OsPid) when is_integer(OsPid) ->
    %% The whole group when the port leads one (its children go too).
    %% (`env kill`: the external kill(1), which takes `--`; dash's
    %% built-in does not.)
    Pid = integer_to_list(OsPid),
    _ = os:cmd("env kill -KILL -- -" ++ Pid ++ " 2>/dev/null || "
               "env kill -KILL " ++ Pid ++ " 2>/dev/null"),
    ok;
kill_os_process(_) ->
    ok.

%% SIGKILLs what is left of the exited port's process group (the port
%% makes itself a group leader with setsid, so the group id is its pid).
%% Nothing is there after a clean exit: the port kills its group itself.
kill_process_group(OsPid) when is_integer(OsPid) ->
    _ = os:cmd("env kill -KILL -- -" ++ integer_to_list(OsPid) ++ " 2>/dev/null"),
    ok;
kill_process_group(_) ->
    ok.

send_packet(Port, Term) ->
    try erlang:port_command(Port, term_to_binary(Term)) of
        true -> ok
    catch
        error:badarg -> closed
    end.

drain(#state{port = Port} = State, Deadline) ->
    receive
        {Port, {data, Bin}} ->
            handle_packet(decode(Bin), State),
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
