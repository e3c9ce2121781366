%% The caller's side of a task, for py_event_loop and py_event_loop_pool:
%% the options checked at the caller's site, then one call of the loop's
%% owner (pyport_calls) to submit it and one to await it.
%%
%% create/5,6 keep what await/2 needs in the caller's process dictionary
%% under the task reference, so that a reference is all the caller holds.
-module(pyport_task).

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
-export([run_source/5]).

%% The API edge: checks, normalised options, the loop.
-export([run_on/5]).
-export([create_on/6]).
-export([spawn_on/5]).

%% Pure helpers, exported for the API modules and their unit tests.
-export([check_call/4]).
-export([run_options/1]).
-export([check_timeout/1]).
-export([task_opts/1]).

%% The default pool's loops are integers, a named pool's {Pool, I}.
-type loop_index() :: pyport_calls:loop_index().
-export_type([loop_index/0]).

-define(KEY(Ref), {?MODULE, Ref}).

%% create/spawn have no caller timeout of their own; this bounds how long
%% their submission may wait for a restarting loop or a full port.
-define(SUBMIT_MS, 5000).

%% API.

%% Submits a task and waits for its result. The deadline travels with the
%% task, so Python cancels it too; the caller never waits past it either.
-spec run(loop_index(), py_event_loop:py_name(), py_event_loop:py_name(),
          list(), py_event_loop:kwargs(), timeout())
    -> py_event_loop:result().
run(Index, Module, Func, Args, Kwargs, Timeout) ->
    run(Index, Module, Func, Args, Kwargs, Timeout, #{}).

%% run/6 with more task options (pyport_handle's `result`, `handle_args`).
-spec run(loop_index(), py_event_loop:py_name(), py_event_loop:py_name(),
          list(), py_event_loop:kwargs(), timeout(), map())
    -> py_event_loop:result().
run(Index, Module, Func, Args, Kwargs, Timeout, Extra) ->
    Deadline = pyport_calls:deadline(Timeout),
    Opts = case task_opts(Timeout) of
               TaskOpts when map_size(Extra) =:= 0 -> TaskOpts;
               TaskOpts -> maps:merge(TaskOpts, Extra)
           end,
    case pyport_calls:submit(Index, {task, Module, Func, Args, Kwargs, Opts}, Deadline) of
        {ok, Ref, Call} -> pyport_calls:await(Ref, Call, Deadline);
        {error, _} = Error -> Error
    end.

%% Submits a task whose result the caller later collects with await/2.
%% A submission that fails still returns a reference, whose await reports
%% the reason, so that callers have one place to handle errors.
-spec create(loop_index(), py_event_loop:py_name(), py_event_loop:py_name(),
             list(), py_event_loop:kwargs()) -> reference().
create(Index, Module, Func, Args, Kwargs) ->
    create(Index, Module, Func, Args, Kwargs, #{}).

%% create/5 with task options (pyport_handle's `result`, `handle_args`).
-spec create(loop_index(), py_event_loop:py_name(), py_event_loop:py_name(),
             list(), py_event_loop:kwargs(), map()) -> reference().
create(Index, Module, Func, Args, Kwargs, Opts) ->
    case pyport_calls:submit(Index, {task, Module, Func, Args, Kwargs, Opts},
                             pyport_calls:deadline(?SUBMIT_MS)) of
        {ok, Ref, Call} ->
            put(?KEY(Ref), Call),
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
        {failed, Reason} ->
            {error, Reason};
        undefined ->
            %% Already awaited, or created by another process: the reply
            %% alias belongs to the creator, so waiting here could only
            %% ever time out.
            {error, unknown_task};
        Call ->
            pyport_calls:await(Ref, Call, pyport_calls:deadline(Timeout))
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
%% `none_atom`, pyport_compat:eval_opts/1).
-spec run_source(loop_index(), exec | eval, binary(), timeout(), map())
    -> py_event_loop:result().
run_source(Index, Kind, Code, Timeout, Extra) when Kind =:= exec; Kind =:= eval ->
    Deadline = pyport_calls:deadline(Timeout),
    case pyport_calls:submit(Index, {Kind, Code, maps:merge(task_opts(Timeout), Extra)},
                             Deadline) of
        {ok, Ref, Call} -> pyport_calls:await(Ref, Call, Deadline);
        {error, _} = Error -> Error
    end.

%% Fire and forget: no pending entry, no monitor, and the task is not
%% cancelled when the caller exits (that is the point of spawning it).
-spec spawn(loop_index(), py_event_loop:py_name(), py_event_loop:py_name(),
            list(), py_event_loop:kwargs())
    -> ok | {error, pyport_calls:submit_error()}.
spawn(Index, Module, Func, Args, Kwargs) ->
    spawn(Index, Module, Func, Args, Kwargs, #{}).

%% spawn/5 with task options (pyport_handle's `handle_args`).
-spec spawn(loop_index(), py_event_loop:py_name(), py_event_loop:py_name(),
            list(), py_event_loop:kwargs(), map())
    -> ok | {error, pyport_calls:submit_error()}.
spawn(Index, Module, Func, Args, Kwargs, Extra) ->
    case pyport_calls:submit(Index, {spawn, Module, Func, Args, Kwargs, Extra},
                             pyport_calls:deadline(?SUBMIT_MS)) of
        {ok, spawned} -> ok;
        {error, _} = Error -> Error
    end.

%% The API edge of every task function (py_event_loop's, the pools',
%% the cluster proxy's): options checked and normalised once, the loop
%% chosen: `{fixed, Index}`, or `{default, Index}` where the task's object
%% handles pick its loop (pyport_handle:task_opts/4), with one search of the
%% arguments.

-spec run_on(pyport_handle:where(), py_event_loop:py_name(), py_event_loop:py_name(), list(), py_event_loop:run_opts()) -> py_event_loop:result().
run_on(Where, Module, Func, Args, Opts) ->
    {Timeout, Kwargs} = run_options(Opts),
    ok = check_call(Module, Func, Args, Kwargs),
    case pyport_handle:task_opts(Where, Args, Kwargs, Opts) of
        {ok, Index, Extra} -> run(Index, Module, Func, Args, Kwargs, Timeout,
                                                pyport_compat:none_atom_opt(Opts, Extra));
        {error, _} = Error -> Error
    end.

-spec create_on(pyport_handle:where(), py_event_loop:py_name(), py_event_loop:py_name(), list(), py_event_loop:kwargs(),
                     py_event_loop:task_opts()) -> reference().
create_on(Where, Module, Func, Args, Kwargs0, Opts) when is_map(Opts) ->
    Kwargs = pyport_compat:kwargs(Kwargs0),
    ok = check_call(Module, Func, Args, Kwargs),
    maps:foreach(fun(result, _) -> ok;
                    (none_atom, _) -> ok;
                    (Key, Value) -> error({badarg, {option, Key, Value}})
                 end, Opts),
    case pyport_handle:task_opts(Where, Args, Kwargs, Opts) of
        {ok, Index, Extra} -> create(Index, Module, Func, Args, Kwargs,
                                                   pyport_compat:none_atom_opt(Opts, Extra));
        {error, Reason} -> failed(Reason)
    end;
create_on(_, _, _, _, _, Opts) ->
    error({badarg, {options, Opts}}).

-spec spawn_on(pyport_handle:where(), py_event_loop:py_name(), py_event_loop:py_name(), list(), py_event_loop:kwargs())
    -> ok | {error, py_event_loop:reason()}.
spawn_on(Where, Module, Func, Args, Kwargs0) ->
    Kwargs = pyport_compat:kwargs(Kwargs0),
    ok = check_call(Module, Func, Args, Kwargs),
    case pyport_handle:task_opts(Where, Args, Kwargs, #{}) of
        {ok, Index, Extra} -> spawn(Index, Module, Func, Args, Kwargs, Extra);
        {error, _} = Error -> Error
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
         %% handle | auto | term, checked by pyport_handle:task_opts/4.
         (result, _) -> ok;
         %% checked by pyport_compat:none_atom_opt/2.
         (none_atom, _) -> ok;
         (Key, Value) -> error({badarg, {option, Key, Value}})
      end, Opts),
    Timeout = check_timeout(maps:get(timeout, Opts, 5000)),
    Kwargs = pyport_compat:kwargs(maps:get(kwargs, Opts, #{})),
    is_map(Kwargs) orelse error({badarg, {kwargs, Kwargs}}),
    {Timeout, Kwargs};
run_options(Opts) ->
    error({badarg, {options, Opts}}).

-spec check_timeout(term()) -> timeout().
check_timeout(infinity) -> infinity;
check_timeout(Ms) when is_integer(Ms), Ms >= 0 -> Ms;
check_timeout(Other) -> error({badarg, {timeout, Other}}).

%% The Opts element of the task packet for a caller waiting Timeout
%% (pyport_calls:deadline_opts/1).
-spec task_opts(timeout()) -> #{deadline_ms => non_neg_integer()}.
task_opts(Timeout) ->
    pyport_calls:deadline_opts(Timeout).

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
