%% Where Python finds code: a virtualenv made with `python3 -m venv` holding
%% a package pip-installed from a wheel built here; python_path, venv and
%% preload per loop; and clear errors when a port cannot start.
-module(py_env_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-compile([export_all, nowarn_export_all]).

-define(I, pyport_interop_helpers).
%% Application env keys this suite sets besides pyport_ct's.
-define(KEYS, [venv, preload, loops, python_path, start_timeout, max_memory_mb,
               output, python_log_level, max_atoms]).

-spec all() -> [{group, atom()}].
all() ->
    [{group, venv}, {group, paths}, {group, start_failures}].

-spec groups() -> [{atom(), list(), [atom()]}].
groups() ->
    [{venv, [],
      [venv_package_is_importable, no_venv_no_package, per_loop_venv,
       activate_venv_at_run_time]},
     {paths, [],
      [per_loop_python_path, preload_imports_before_ready]},
     {start_failures, [],
      [bad_python_path, bad_venv, missing_preload_module, failing_preload_module,
       python_fails_to_initialise, start_failure_is_logged, bad_config_values]}].

-spec init_per_suite(ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_suite(Config) ->
    Priv = ?config(priv_dir, Config),
    case os:find_executable("python3") of
        false ->
            {skip, "no python3 on PATH to make a virtualenv with"};
        Python ->
            PortVersion = python_version(pyport_config:executable(), ["run"]),
            case python_version(Python, []) of
                PortVersion ->
                    Venv = filename:join(Priv, "venv"),
                    Wheel = build_wheel(Priv),
                    {0, _} = run(Python, ["-m", "venv", Venv]),
                    Pip = filename:join([Venv, "bin", "pip"]),
                    {0, PipOut} = run(Pip, ["install", "--no-index", "--no-deps", Wheel]),
                    ct:log("pip: ~ts", [PipOut]),
                    Extra = filename:join(Priv, "extra"),
                    ok = filelib:ensure_dir(filename:join(Extra, "x")),
                    ok = file:write_file(filename:join(Extra, "extra_mod.py"),
                                         <<"WHERE = 'extra'\n">>),
                    ok = file:write_file(filename:join(Extra, "preload_probe.py"),
                                         <<"import os\nPID = os.getpid()\n">>),
                    ok = file:write_file(filename:join(Extra, "broken_preload.py"),
                                         <<"raise RuntimeError('broken on purpose')\n">>),
                    [{venv, Venv}, {extra, Extra} | Config];
                Other ->
                    {skip, io_lib:format("python3 is ~s, the port's Python is ~s: a "
                                         "venv must match the port's X.Y",
                                         [Other, PortVersion])}
            end
    end.

-spec end_per_suite(ct_suite:ct_config()) -> ok.
end_per_suite(_Config) ->
    ok.

-spec init_per_group(atom(), ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_group(_, Config) ->
    Config.

-spec end_per_group(atom(), ct_suite:ct_config()) -> ok.
end_per_group(_, _Config) ->
    ok.

-spec end_per_testcase(atom(), ct_suite:ct_config()) -> ok.
end_per_testcase(_, _Config) ->
    ok = pyport_ct:release_logs(),
    stop().

-spec stop() -> ok.
stop() ->
    ok = pyport_ct:stop(),
    lists:foreach(fun(K) -> ok = application:unset_env(pyport, K) end, ?KEYS).

%% -- venv --------------------------------------------------------------------------

-spec venv_package_is_importable() -> [{doc, string()}].
venv_package_is_importable() -> [{doc, "With venv set, a package pip-installed into that virtualenv imports in every loop, from the venv's site-packages, and VIRTUAL_ENV is set."}].
-spec venv_package_is_importable(ct_suite:ct_config()) -> term().
venv_package_is_importable(Config) ->
    Venv = ?config(venv, Config),
    ok = pyport_ct:start([{event_loop_pool_size, 2}, {venv, Venv}]),
    [?assertEqual({ok, <<"hi from tinypkg">>},
                  py_event_loop:run(Loop, ?I, import_and_call, [tinypkg, hello], #{}))
     || Loop <- [{pyport_loop, 1}, {pyport_loop, 2}]],
    {ok, File} = py_event_loop:run(?I, module_file, [tinypkg]),
    ?assertEqual(filename:join([Venv, "lib", "python" ++ python_version(pyport_config:executable(), ["run"]),
                                "site-packages", "tinypkg", "__init__.py"]),
                 binary_to_list(File)),
    ?assertEqual({ok, list_to_binary(Venv)}, py_event_loop:run(?I, env, [<<"VIRTUAL_ENV">>])).

-spec no_venv_no_package() -> [{doc, string()}].
no_venv_no_package() -> [{doc, "Without the venv the package is not importable (the test is not passing by accident)."}].
-spec no_venv_no_package(ct_suite:ct_config()) -> term().
no_venv_no_package(_) ->
    ok = pyport_ct:start([{event_loop_pool_size, 1}]),
    ?assertMatch({error, {python, <<"ModuleNotFoundError">>, _, _}},
                 py_event_loop:run(?I, import_and_call, [tinypkg, hello])).

-spec per_loop_venv() -> [{doc, string()}].
per_loop_venv() -> [{doc, "A venv in one loop's own settings (loops => #{2 => #{venv => Dir}}) applies to that loop only."}].
-spec per_loop_venv(ct_suite:ct_config()) -> term().
per_loop_venv(Config) ->
    Venv = ?config(venv, Config),
    ok = pyport_ct:start([{event_loop_pool_size, 2}, {loops, #{2 => #{venv => Venv}}}]),
    ?assertEqual({ok, <<"hi from tinypkg">>},
                 py_event_loop:run({pyport_loop, 2}, ?I, import_and_call, [tinypkg, hello], #{})),
    ?assertMatch({error, {python, <<"ModuleNotFoundError">>, _, _}},
                 py_event_loop:run({pyport_loop, 1}, ?I, import_and_call, [tinypkg, hello], #{})).

-spec activate_venv_at_run_time() -> [{doc, string()}].
activate_venv_at_run_time() -> [{doc, "erlang.activate_venv(Dir), run as a task, makes the venv's packages importable on that loop."}].
-spec activate_venv_at_run_time(ct_suite:ct_config()) -> term().
activate_venv_at_run_time(Config) ->
    Venv = ?config(venv, Config),
    ok = pyport_ct:start([{event_loop_pool_size, 1}]),
    {ok, SitePackages} = py_event_loop:run(erlang, activate_venv, [list_to_binary(Venv)]),
    ?assertMatch({_, _}, binary:match(SitePackages, <<"site-packages">>)),
    ?assertEqual({ok, <<"hi from tinypkg">>},
                 py_event_loop:run(?I, import_and_call, [tinypkg, hello])),
    ?assertMatch({error, {python, <<"ValueError">>, _, _}},
                 py_event_loop:run(erlang, activate_venv, [<<"/nonexistent/venv">>])).

%% -- python_path, preload -------------------------------------------------------------

-spec per_loop_python_path() -> [{doc, string()}].
per_loop_python_path() -> [{doc, "A loop's own python_path replaces the global one for that loop only."}].
-spec per_loop_python_path(ct_suite:ct_config()) -> term().
per_loop_python_path(Config) ->
    Extra = ?config(extra, Config),
    ok = pyport_ct:start([{event_loop_pool_size, 2},
                          {loops, #{1 => #{python_path => [pyport_ct:helpers_dir(), Extra]}}}]),
    ?assertEqual({ok, <<"extra">>},
                 py_event_loop:run({pyport_loop, 1}, extra_mod, 'WHERE.__str__', [], #{})),
    ?assertMatch({error, {python, <<"ModuleNotFoundError">>, _, _}},
                 py_event_loop:run({pyport_loop, 2}, extra_mod, 'WHERE.__str__', [], #{})),
    {ok, Path} = py_event_loop:run({pyport_loop, 1}, ?I, sys_path, [], #{}),
    ?assertEqual([list_to_binary(pyport_ct:helpers_dir()), list_to_binary(Extra)],
                 lists:sublist(Path, 2)).

-spec preload_imports_before_ready() -> [{doc, string()}].
preload_imports_before_ready() -> [{doc, "Modules in preload are imported before the loop is ready."}].
-spec preload_imports_before_ready(ct_suite:ct_config()) -> term().
preload_imports_before_ready(Config) ->
    Extra = ?config(extra, Config),
    ok = pyport_ct:start([{event_loop_pool_size, 1},
                          {python_path, [pyport_ct:helpers_dir(), Extra]},
                          {preload, [preload_probe, <<"json">>]}]),
    ?assertEqual({ok, true}, py_event_loop:run(?I, loaded, [preload_probe])),
    ?assertEqual({ok, false}, py_event_loop:run(?I, loaded, [extra_mod])).

%% -- start failures -------------------------------------------------------------------

-spec bad_python_path() -> [{doc, string()}].
bad_python_path() -> [{doc, "A python_path entry that is not a directory stops the start with {port_start_failed, {bad_python_path, Dir}}."}].
-spec bad_python_path(ct_suite:ct_config()) -> term().
bad_python_path(_) ->
    Reason = failed_start([{python_path, ["/nonexistent/pyport-ct-dir"]}]),
    ?assertEqual({bad_python_path, <<"/nonexistent/pyport-ct-dir">>}, Reason).

-spec bad_venv() -> [{doc, string()}].
bad_venv() -> [{doc, "A venv without site-packages for this Python stops the start with {port_start_failed, {bad_venv, Dir, Why}}."}].
-spec bad_venv(ct_suite:ct_config()) -> term().
bad_venv(Config) ->
    NotVenv = ?config(extra, Config),
    {bad_venv, Dir, Why} = failed_start([{venv, NotVenv}]),
    ?assertEqual(list_to_binary(NotVenv), Dir),
    ?assertMatch({_, _}, binary:match(Why, <<"site-packages">>)).

-spec missing_preload_module() -> [{doc, string()}].
missing_preload_module() -> [{doc, "A preload module that does not exist stops the start with {preload_failed, Module, {python, <<\"ModuleNotFoundError\">>, ...}}."}].
-spec missing_preload_module(ct_suite:ct_config()) -> term().
missing_preload_module(_) ->
    ?assertMatch({preload_failed, <<"no_such_module_pyport_ct">>,
                  {python, <<"ModuleNotFoundError">>, _, _}},
                 failed_start([{preload, [no_such_module_pyport_ct]}])).

-spec failing_preload_module() -> [{doc, string()}].
failing_preload_module() -> [{doc, "A preload module that raises on import stops the start with its exception and traceback."}].
-spec failing_preload_module(ct_suite:ct_config()) -> term().
failing_preload_module(Config) ->
    {preload_failed, <<"broken_preload">>, {python, <<"RuntimeError">>, Msg, Tb}} =
        failed_start([{python_path, [?config(extra, Config)]},
                      {preload, [<<"broken_preload">>]}]),
    ?assertEqual(<<"broken on purpose">>, Msg),
    ?assertMatch({_, _}, binary:match(Tb, <<"broken_preload.py">>)).

-spec python_fails_to_initialise() -> [{doc, string()}].
python_fails_to_initialise() -> [{doc, "When Python cannot initialise (PYTHONHOME points nowhere) the start fails with {exit_status, Status, Stderr} holding Python's own fatal error text."}].
-spec python_fails_to_initialise(ct_suite:ct_config()) -> term().
python_fails_to_initialise(_) ->
    true = os:putenv("PYTHONHOME", "/nonexistent/pyport-ct-home"),
    try
        {exit_status, Status, Stderr} = failed_start([]),
        ?assertNotEqual(0, Status),
        ?assertMatch({_, _}, binary:match(Stderr, <<"Fatal Python error">>)),
        ?assertMatch({_, _}, binary:match(Stderr, <<"encodings">>))
    after
        true = os:unsetenv("PYTHONHOME")
    end.

-spec start_failure_is_logged() -> [{doc, string()}].
start_failure_is_logged() -> [{doc, "A failed port start is logged as an error naming the loop and the reason."}].
-spec start_failure_is_logged(ct_suite:ct_config()) -> term().
start_failure_is_logged(_) ->
    ok = pyport_ct:capture_logs(),
    _ = failed_start([{python_path, ["/nonexistent/pyport-ct-logged"]}]),
    %% (Python's own "cannot start" line on stderr may be logged too, as
    %% a warning; the worker's report is the error.)
    Event = pyport_ct:await_log(
              fun(#{level := Level} = E) ->
                      Level =:= error andalso pyport_ct:log_mentions(E, <<"pyport-ct-logged">>)
              end, 5000),
    ?assertMatch(#{level := error, meta := #{pyport_loop := 1}}, Event).

-spec bad_config_values() -> [{doc, string()}].
bad_config_values() -> [{doc, "Wrongly typed venv, preload, loops, output or python_log_level values stop the start with bad_config naming the key."}].
-spec bad_config_values(ct_suite:ct_config()) -> term().
bad_config_values(_) ->
    [begin
         {error, Reason} = start_with([{Key, Value}]),
         ?assert(contains(Reason, Expected)),
         stop()
     end || {Key, Value, Expected} <-
                [{venv, 42, {bad_config, {venv, 42}}},
                 {preload, [42], {bad_config, {preload, [42]}}},
                 {output, file, {bad_config, {output, file}}},
                 {python_log_level, loud, {bad_config, {python_log_level, loud}}},
                 {loops, [1], {bad_config, {loops, [1]}}},
                 {loops, #{1 => #{colour => red}}, {bad_config, {{loops, 1, colour}, red}}}]].

%% -- helpers ------------------------------------------------------------------------

%% Starts pyport with Env (on top of the helpers' python_path and one
%% loop) expecting the start to fail; returns the port_start_failed reason.
-spec failed_start([{atom(), term()}]) -> term().
failed_start(Env) ->
    {error, Reason} = start_with(Env),
    case find_port_start_failed(Reason) of
        {ok, Why} -> Why;
        error -> ct:fail({no_port_start_failed, Reason})
    end.

-spec start_with([{atom(), term()}]) -> ok | {error, term()}.
start_with(Env) ->
    _ = application:load(pyport),
    lists:foreach(fun({K, V}) -> ok = application:set_env(pyport, K, V) end,
                  [{python_path, [pyport_ct:helpers_dir()]}, {event_loop_pool_size, 1}
                   | Env]),
    application:start(pyport).

-spec contains(term(), term()) -> boolean().
contains(Term, Term) -> true;
contains(T, Part) when is_tuple(T) -> contains(tuple_to_list(T), Part);
contains([H | T], Part) -> contains(H, Part) orelse contains(T, Part);
contains(_, _) -> false.

-spec find_port_start_failed(term()) -> {ok, term()} | error.
find_port_start_failed({port_start_failed, Why}) ->
    {ok, Why};
find_port_start_failed(T) when is_tuple(T) ->
    find_port_start_failed(tuple_to_list(T));
find_port_start_failed([H | T]) ->
    case find_port_start_failed(H) of
        {ok, _} = Found -> Found;
        error -> find_port_start_failed(T)
    end;
find_port_start_failed(_) ->
    error.

-spec python_version(file:filename(), [string()]) -> string().
python_version(Exe, Prefix) ->
    {0, Out} = run(Exe, Prefix ++ ["-c", "import sys; print('%d.%d' % sys.version_info[:2])"]),
    string:trim(binary_to_list(Out)).

%% Runs Exe with Args; returns its exit status and output (stdout and
%% stderr together).
-spec run(file:filename(), [string()]) -> {integer(), binary()}.
run(Exe, Args) ->
    Port = open_port({spawn_executable, Exe},
                     [{args, Args}, exit_status, binary, stderr_to_stdout, use_stdio]),
    collect(Port, []).

-spec collect(port(), [binary()]) -> {integer(), binary()}.
collect(Port, Acc) ->
    receive
        {Port, {data, Data}} -> collect(Port, [Data | Acc]);
        {Port, {exit_status, Status}} -> {Status, iolist_to_binary(lists:reverse(Acc))}
    after 300000 ->
        ct:fail({command_timed_out, Port})
    end.

%% A wheel (a zip with the package and its dist-info) for a one-module
%% package `tinypkg`, built here so that pip needs no network and no build
%% backend.
-spec build_wheel(file:filename()) -> string().
build_wheel(Dir) ->
    Info = "tinypkg-0.1.dist-info/",
    Files = [{"tinypkg/__init__.py", <<"def hello():\n    return 'hi from tinypkg'\n">>},
             {Info ++ "METADATA", <<"Metadata-Version: 2.1\nName: tinypkg\nVersion: 0.1\n">>},
             {Info ++ "WHEEL", <<"Wheel-Version: 1.0\nGenerator: pyport-ct\n"
                                 "Root-Is-Purelib: true\nTag: py3-none-any\n">>}],
    Record = iolist_to_binary([[Name, ",,\n"] || {Name, _} <- Files] ++ [Info, "RECORD,,\n"]),
    Wheel = filename:join(Dir, "tinypkg-0.1-py3-none-any.whl"),
    {ok, _} = zip:create(Wheel, Files ++ [{Info ++ "RECORD", Record}]),
    Wheel.
