%% Python logging records and what Python or C code writes to fds 1 and 2
%% reach the OTP logger (or the node's stderr), line by line, tagged with
%% the loop.
-module(py_logging_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-compile([export_all, nowarn_export_all]).

-define(I, pyport_interop_helpers).

-spec all() -> [{group, atom()}].
all() ->
    [{group, levels}, {group, default_level}, {group, output}, {group, stderr_output}].

-spec groups() -> [{atom(), list(), [atom()]}].
groups() ->
    [{levels, [],
      [python_levels_map_to_otp_levels, logger_name_and_loop_metadata,
       exception_traceback_in_message]},
     {default_level, [],
      [default_level_follows_the_otp_primary_level]},
     {output, [],
      [print_reaches_logger, python_stderr_reaches_logger, os_write_fd1_and_fd2,
       c_write_fd1_and_fd2, lines_are_split_in_order, channel_survives_output]},
     {stderr_output, [],
      [output_to_the_node_stderr]}].

-spec init_per_suite(ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_suite(Config) ->
    #{level := Level} = logger:get_primary_config(),
    [{primary_level, Level} | Config].

-spec end_per_suite(ct_suite:ct_config()) -> ok.
end_per_suite(Config) ->
    ok = logger:set_primary_config(level, ?config(primary_level, Config)).

-spec init_per_group(atom(), ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_group(levels, Config) ->
    ok = logger:set_primary_config(level, all),
    ok = pyport_ct:start([{event_loop_pool_size, 2}, {python_log_level, debug}]),
    Config;
init_per_group(default_level, Config) ->
    ok = logger:set_primary_config(level, notice),
    ok = pyport_ct:start([{event_loop_pool_size, 1}]),
    Config;
init_per_group(output, Config) ->
    ok = logger:set_primary_config(level, all),
    ok = pyport_ct:start([{event_loop_pool_size, 1}]),
    Config;
init_per_group(stderr_output, Config) ->
    ok = logger:set_primary_config(level, all),
    ok = pyport_ct:start([{event_loop_pool_size, 1}, {output, stderr}]),
    Config.

-spec end_per_group(atom(), ct_suite:ct_config()) -> ok.
end_per_group(_, Config) ->
    ok = pyport_ct:stop(),
    ok = application:unset_env(pyport, python_log_level),
    ok = application:unset_env(pyport, output),
    ok = logger:set_primary_config(level, ?config(primary_level, Config)).

-spec init_per_testcase(atom(), ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_testcase(_, Config) ->
    ok = pyport_ct:capture_logs(),
    Config.

-spec end_per_testcase(atom(), ct_suite:ct_config()) -> ok.
end_per_testcase(_, _Config) ->
    pyport_ct:release_logs().

%% -- logging ----------------------------------------------------------------------

-spec python_levels_map_to_otp_levels() -> [{doc, string()}].
python_levels_map_to_otp_levels() -> [{doc, "Python's DEBUG, INFO, WARNING, ERROR and CRITICAL records arrive at the OTP levels debug, info, warning, error and critical."}].
-spec python_levels_map_to_otp_levels(ct_suite:ct_config()) -> term().
python_levels_map_to_otp_levels(_) ->
    [begin
         Text = key(),
         {ok, _} = py_event_loop:run(?I, log, [<<"pyport.levels">>, PyLevel, Text]),
         Event = await_text(Text),
         ?assertMatch(#{level := OtpLevel}, Event)
     end || {PyLevel, OtpLevel} <- [{<<"debug">>, debug}, {<<"info">>, info},
                                    {<<"warning">>, warning}, {<<"error">>, error},
                                    {<<"critical">>, critical}]].

-spec logger_name_and_loop_metadata() -> [{doc, string()}].
logger_name_and_loop_metadata() -> [{doc, "Each record carries the Python logger's name and the loop it came from as metadata."}].
-spec logger_name_and_loop_metadata(ct_suite:ct_config()) -> term().
logger_name_and_loop_metadata(_) ->
    [begin
         Text = key(),
         {ok, _} = py_event_loop:run({pyport_loop, Loop}, ?I, log,
                                     [<<"my.app.db">>, <<"warning">>, Text], #{}),
         ?assertMatch(#{level := warning,
                        meta := #{pyport_loop := Loop, python_logger := <<"my.app.db">>}},
                      await_text(Text))
     end || Loop <- [1, 2]].

-spec exception_traceback_in_message() -> [{doc, string()}].
exception_traceback_in_message() -> [{doc, "logger.exception() arrives at level error with the traceback in the message."}].
-spec exception_traceback_in_message(ct_suite:ct_config()) -> term().
exception_traceback_in_message(_) ->
    Text = key(),
    {ok, true} = py_event_loop:run(?I, log_exception, [<<"pyport.exc">>, Text]),
    Event = await_text(Text),
    ?assertMatch(#{level := error}, Event),
    ?assert(pyport_ct:log_mentions(Event, <<"Traceback">>)),
    ?assert(pyport_ct:log_mentions(Event, <<"inner failure">>)).

-spec default_level_follows_the_otp_primary_level() -> [{doc, string()}].
default_level_follows_the_otp_primary_level() -> [{doc, "Without python_log_level, Python's root level follows the OTP primary level (notice -> 25): info records are not even sent, warnings are."}].
-spec default_level_follows_the_otp_primary_level(ct_suite:ct_config()) -> term().
default_level_follows_the_otp_primary_level(_) ->
    ?assertEqual({ok, 25}, py_event_loop:run(?I, root_level, [])),
    Quiet = key(),
    Loud = key(),
    {ok, _} = py_event_loop:run(?I, log, [<<"pyport.default">>, <<"info">>, Quiet]),
    {ok, _} = py_event_loop:run(?I, log, [<<"pyport.default">>, <<"warning">>, Loud]),
    %% Records arrive in order: had the info record been sent, it would
    %% come before the warning.
    Event = pyport_ct:await_log(fun(E) -> pyport_ct:log_mentions(E, Loud)
                                              orelse pyport_ct:log_mentions(E, Quiet)
                                end, 5000),
    ?assert(pyport_ct:log_mentions(Event, Loud)).

%% -- output -----------------------------------------------------------------------

-spec print_reaches_logger() -> [{doc, string()}].
print_reaches_logger() -> [{doc, "print() in Python reaches the OTP logger at info, python_logger <<\"stdout\">>, with the loop."}].
-spec print_reaches_logger(ct_suite:ct_config()) -> term().
print_reaches_logger(_) ->
    Text = key(),
    {ok, true} = py_event_loop:run(?I, print_line, [Text]),
    ?assertMatch(#{level := info,
                   msg := {"~ts", [Text]},
                   meta := #{pyport_loop := 1, python_logger := <<"stdout">>,
                             pyport_stream := stdout}},
                 await_text(Text)).

-spec python_stderr_reaches_logger() -> [{doc, string()}].
python_stderr_reaches_logger() -> [{doc, "print(file=sys.stderr) reaches the OTP logger at warning, python_logger <<\"stderr\">>."}].
-spec python_stderr_reaches_logger(ct_suite:ct_config()) -> term().
python_stderr_reaches_logger(_) ->
    Text = key(),
    {ok, true} = py_event_loop:run(?I, print_stderr, [Text]),
    ?assertMatch(#{level := warning,
                   meta := #{pyport_loop := 1, python_logger := <<"stderr">>,
                             pyport_stream := stderr}},
                 await_text(Text)).

-spec os_write_fd1_and_fd2() -> [{doc, string()}].
os_write_fd1_and_fd2() -> [{doc, "os.write on fds 1 and 2 (no Python buffering) reaches the logger as stdout and stderr lines."}].
-spec os_write_fd1_and_fd2(ct_suite:ct_config()) -> term().
os_write_fd1_and_fd2(_) ->
    Out = key(),
    Err = key(),
    {ok, true} = py_event_loop:run(?I, os_write, [1, Out]),
    {ok, true} = py_event_loop:run(?I, os_write, [2, Err]),
    ?assertMatch(#{level := info, meta := #{pyport_stream := stdout}}, await_text(Out)),
    ?assertMatch(#{level := warning, meta := #{pyport_stream := stderr}}, await_text(Err)).

-spec c_write_fd1_and_fd2() -> [{doc, string()}].
c_write_fd1_and_fd2() -> [{doc, "write(2) called from C (libc through ctypes) on fds 1 and 2 reaches the logger line by line."}].
-spec c_write_fd1_and_fd2(ct_suite:ct_config()) -> term().
c_write_fd1_and_fd2(_) ->
    Out = key(),
    Err = key(),
    {ok, N1} = py_event_loop:run(?I, c_write, [1, Out]),
    {ok, N2} = py_event_loop:run(?I, c_write, [2, Err]),
    ?assertEqual(byte_size(Out) + 1, N1),
    ?assertEqual(byte_size(Err) + 1, N2),
    ?assertMatch(#{level := info, msg := {"~ts", [Out]},
                   meta := #{pyport_stream := stdout, pyport_loop := 1}}, await_text(Out)),
    ?assertMatch(#{level := warning, msg := {"~ts", [Err]},
                   meta := #{pyport_stream := stderr, pyport_loop := 1}}, await_text(Err)).

-spec lines_are_split_in_order() -> [{doc, string()}].
lines_are_split_in_order() -> [{doc, "One write of several lines becomes one log event per line, in order."}].
-spec lines_are_split_in_order(ct_suite:ct_config()) -> term().
lines_are_split_in_order(_) ->
    Prefix = key(),
    {ok, 5} = py_event_loop:run(?I, print_lines, [Prefix, 5]),
    Lines = [begin
                 #{msg := {"~ts", [Line]}} = await_text(Prefix),
                 Line
             end || _ <- lists:seq(1, 5)],
    ?assertEqual([<<Prefix/binary, " ", (integer_to_binary(N))/binary>> || N <- lists:seq(0, 4)],
                 Lines).

-spec channel_survives_output() -> [{doc, string()}].
channel_survives_output() -> [{doc, "Heavy output on fds 1 and 2 leaves the packet channel intact and the port alive."}].
-spec channel_survives_output(ct_suite:ct_config()) -> term().
channel_survives_output(_) ->
    #{os_pid := OsPid} = pyport_ct:loop_stats(1),
    Prefix = key(),
    {ok, 2000} = py_event_loop:run(?I, print_lines, [Prefix, 2000]),
    ?assertEqual({ok, <<"intact">>}, py_event_loop:run(pyport_ct_helpers, identity, [<<"intact">>])),
    ?assertMatch(#{os_pid := OsPid, restarts := 0}, pyport_ct:loop_stats(1)).

%% -- output => stderr ---------------------------------------------------------------

-spec output_to_the_node_stderr() -> [{doc, string()}].
output_to_the_node_stderr() -> [{doc, "With output => stderr, Python's stdout and stderr lines go to the node's standard_error, prefixed with the loop and stream, not to the logger."}].
-spec output_to_the_node_stderr(ct_suite:ct_config()) -> term().
output_to_the_node_stderr(_) ->
    Out = key(),
    Err = key(),
    with_stderr_capture(
      fun() ->
              {ok, true} = py_event_loop:run(?I, print_line, [Out]),
              {ok, N} = py_event_loop:run(?I, c_write, [2, Err]),
              ?assertEqual(byte_size(Err) + 1, N),
              ?assertEqual(<<"[pyport 1 stdout] ", Out/binary, "\n">>, await_stderr(Out)),
              ?assertEqual(<<"[pyport 1 stderr] ", Err/binary, "\n">>, await_stderr(Err))
      end),
    %% Not logged: the logger saw neither line.
    ?assertEqual([], [E || {pyport_ct_log, E} <- pyport_ct:mailbox(),
                           pyport_ct:log_mentions(E, Out) orelse
                               pyport_ct:log_mentions(E, Err)]).

%% -- helpers --------------------------------------------------------------------------

-spec key() -> binary().
key() ->
    iolist_to_binary(io_lib:format("pyport-log-~b", [erlang:unique_integer([positive])])).

-spec await_text(binary()) -> logger:log_event().
await_text(Text) ->
    pyport_ct:await_log(fun(E) -> pyport_ct:log_mentions(E, Text) end, 10000).

%% Runs Fun with standard_error replaced by a process that hands the text
%% written to it to this process as {stderr_text, Binary}.
-spec with_stderr_capture(fun(() -> term())) -> term().
with_stderr_capture(Fun) ->
    Old = whereis(standard_error),
    Self = self(),
    Capture = spawn_link(fun() -> capture_loop(Self) end),
    true = unregister(standard_error),
    true = register(standard_error, Capture),
    try
        Fun()
    after
        unregister(standard_error),
        true = register(standard_error, Old),
        unlink(Capture),
        exit(Capture, kill)
    end.

-spec capture_loop(pid()) -> no_return().
capture_loop(Parent) ->
    receive
        {io_request, From, ReplyAs, Request} ->
            Parent ! {stderr_text, request_text(Request)},
            From ! {io_reply, ReplyAs, ok},
            capture_loop(Parent)
    end.

-spec request_text(term()) -> binary().
request_text({put_chars, unicode, Chars}) ->
    unicode:characters_to_binary(Chars);
request_text({put_chars, unicode, M, F, A}) ->
    unicode:characters_to_binary(apply(M, F, A));
request_text({put_chars, latin1, Chars}) ->
    unicode:characters_to_binary(Chars, latin1);
request_text(Other) ->
    iolist_to_binary(io_lib:format("~p", [Other])).

-spec await_stderr(binary()) -> binary().
await_stderr(Needle) ->
    receive
        {stderr_text, Text} ->
            case binary:match(Text, Needle) of
                nomatch -> await_stderr(Needle);
                _ -> Text
            end
    after 10000 ->
        ct:fail({no_stderr_text, Needle})
    end.
