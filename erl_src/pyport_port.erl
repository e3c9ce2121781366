%% Opening and closing a loop's port. Opening is the start handshake
%% (docs/protocol.md, "Start"): the port program's options, the private
%% start-up stderr file, `ready` or `start_failed` or an exit, and the log
%% and output lines that may come first. The worker takes over the port
%% once it is ready.
-module(pyport_port).

%% API.
-export([open/2]).
-export([close/1]).

%% The port's busy state: over BUSY_HIGH bytes queued for Python it is
%% busy (callers back off, see pyport_task:write/3), under BUSY_LOW not.
-define(BUSY_LOW, 256 * 1024).
-define(BUSY_HIGH, 1024 * 1024).

%% API.

%% Opens the port of loop Index and waits for `ready'. Returns the port,
%% its ready info, the framer and the frames that came in the same read
%% after `ready' (for the worker to handle), or why it did not start (the
%% port is closed then).
-spec open(pyport_task:loop_index(), pyport_config:config())
    -> {ok, port(), map(), pyport_framer:framer(), [binary()]} | {error, term()}.
open(Index, Config) ->
    %% Until Python captures its fds 1 and 2, what the port writes there
    %% (a fatal error while Python initialises, say) goes to this file,
    %% so that a failed start can say why. It lives in the node's private
    %% directory (pyport_tmpdir), never at a predictable path.
    case pyport_tmpdir:file(Index) of
        {ok, StderrFile} -> open(Index, Config, StderrFile);
        {error, Reason} -> {error, {stderr_file, Reason}}
    end.

open(Index, #{start_timeout := StartTimeout, max_output_packet := MaxOutput,
                    env := Env} = Config, StderrFile) ->
    Exe = pyport_config:executable(),
    %% Stream mode: the worker frames the output itself (pyport_framer),
    %% so that garbage cannot make the runtime wait for a huge packet.
    %% The port counts as busy only once a real backlog builds up (Python
    %% not reading): callers write with nosuspend and back off while it is
    %% busy, so the runtime's default limits (a few KiB) would make them
    %% back off in every burst of tasks.
    Options = [stream, binary, nouse_stdio, exit_status,
               {busy_limits_port, {?BUSY_LOW, ?BUSY_HIGH}},
               {args, pyport_config:port_args(Config#{stderr_file => StderrFile})}]
        ++ [{env, Env} || Env =/= []],
    try open_port({spawn_executable, Exe}, Options) of
        Port ->
            Framer = pyport_framer:new(MaxOutput),
            case await_ready(Port, Index, Config, pyport_calls:deadline(StartTimeout), Framer, []) of
                {ok, Info, Framer1, Frames} ->
                    startup_output(StderrFile, Index, Config),
                    %% The interpreter check (pyport_interpreter).
                    case pyport_interpreter:check(Index, Info, Config) of
                        ok ->
                            {ok, Port, Info, Framer1, Frames};
                        {error, Reason} ->
                            close(Port),
                            logger:error("pyport loop ~p: the port failed to start: ~tp",
                                         [Index, Reason], #{pyport_loop => Index}),
                            {error, Reason}
                    end;
                {error, Reason0} ->
                    close(Port),
                    Reason = pyport_interpreter:loader_message(
                               with_stderr(Reason0, StderrFile), Exe, Env),
                    logger:error("pyport loop ~p: the port failed to start: ~tp",
                                 [Index, Reason], #{pyport_loop => Index}),
                    {error, Reason}
            end
    catch
        error:Reason ->
            _ = file:delete(StderrFile),
            {error, {open_port, Reason, Exe}}
    end.

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

%% Frames holds what the last read completed and is not handled yet;
%% those after `ready` are returned, for the running worker.
await_ready(Port, Index, #{max_output_packet := MaxOutput, max_atoms := MaxAtoms} = Config,
            Deadline, Framer, [Frame | Frames]) ->
    case pyport_atoms:decode(Frame, MaxOutput, Index, MaxAtoms) of
        {ok, Packet, _Created} ->
            case Packet of
                {ready, Info} ->
                    {ok, Info, Framer, Frames};
                {protocol_mismatch, Info} ->
                    {error, {protocol_mismatch, Info}};
                {start_failed, Reason} ->
                    %% Python started but refused to serve: a bad
                    %% python_path entry or venv, a preload that failed.
                    {error, Reason};
                {log, Level, Logger, Message} ->
                    %% Start-up diagnostics are worth keeping.
                    pyport_log:record(Level, Logger, Message, Index),
                    await_ready(Port, Index, Config, Deadline, Framer, Frames);
                {output, Stream, Line} ->
                    pyport_log:output(Stream, Line, Index, maps:get(output, Config)),
                    await_ready(Port, Index, Config, Deadline, Framer, Frames);
                {unexpected, Other} ->
                    {error, {unexpected_packet, pyport_log:bounded(Other)}};
                Other ->
                    {error, {unexpected_packet, pyport_log:bounded(Other)}}
            end;
        {refused, Reason, _} ->
            {error, {bad_output, Reason}};
        {broken, Reason} ->
            {error, {bad_output, Reason}}
    end;
await_ready(Port, Index, Config, Deadline, Framer, []) ->
    receive
        {Port, {data, Bin}} ->
            case pyport_framer:feed(Bin, Framer) of
                {ok, Frames, Framer1} ->
                    await_ready(Port, Index, Config, Deadline, Framer1, Frames);
                {error, Reason} ->
                    {error, {bad_output, Reason}}
            end;
        {Port, {exit_status, Status}} ->
            {error, {exit_status, Status}};
        {'EXIT', Port, Reason} ->
            {error, {port_exit, Reason}}
    after pyport_calls:after_ms(Deadline) ->
        {error, no_ready_packet_in_time}
    end.


%% Closes Port (a port closed already is fine) and drops the 'EXIT' it may
%% have left in the caller's mailbox (the caller is its owner). Closing a
%% stuck port is also how it is killed: its watcher thread ends it
%% (src/lifeline.rs).
-spec close(port()) -> ok.
close(Port) ->
    case erlang:port_info(Port, queue_size) of
        {queue_size, 0} ->
            try port_close(Port) of
                true -> ok
            catch
                error:badarg -> ok
            end,
            %% A closed port's last messages would otherwise sit in the mailbox.
            receive
                {'EXIT', Port, _} -> ok
            after 0 -> ok
            end;
        {queue_size, _} ->
            %% Output queued for a Python that does not read it: port_close
            %% would keep the port open until Python read it all; a kill
            %% drops it and closes the port at once.
            exit(Port, kill),
            receive
                {'EXIT', Port, _} -> ok
            after 1000 -> ok
            end;
        undefined ->
            ok
    end.
