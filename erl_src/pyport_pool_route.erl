%% erlang_python's register_pool/2 (docs/porting.md, "Named pools"):
%% py:call/3,4,5 of a module, or of one function of it, go to a named pool
%% (py_pool) instead of the default one, without changing the call sites.
%%
%% The routes are read on every py:call and written rarely (at start-up),
%% so they live in one persistent_term: a write costs a global scan, a
%% read nothing. Names are kept as binaries, so `json` and `<<"json">>`
%% are one module.
-module(pyport_pool_route).

%% API.
-export([register/2]).
-export([unregister/1]).
-export([lookup/2]).

-define(KEY, {?MODULE, routes}).

-type target() :: py_event_loop:py_name() | {py_event_loop:py_name(), py_event_loop:py_name()}.
-export_type([target/0]).

%% API.

-spec register(atom(), target()) -> ok.
register(Pool, Target) when is_atom(Pool) ->
    put_routes((routes())#{key(Target) => Pool}).

-spec unregister(target()) -> ok.
unregister(Target) ->
    put_routes(maps:remove(key(Target), routes())).

%% The pool of {Module, Func}: its function's route, else its module's.
-spec lookup(term(), term()) -> {ok, atom()} | default.
lookup(Module, Func) ->
    case routes() of
        Routes when map_size(Routes) =:= 0 ->
            default;
        Routes ->
            try {name(Module), name(Func)} of
                {M, F} ->
                    case Routes of
                        #{{M, F} := Pool} -> {ok, Pool};
                        #{M := Pool} -> {ok, Pool};
                        _ -> default
                    end
            catch
                error:{badarg, _} -> default
            end
    end.

%% Internal.

routes() ->
    persistent_term:get(?KEY, #{}).

put_routes(Routes) when map_size(Routes) =:= 0 ->
    _ = persistent_term:erase(?KEY),
    ok;
put_routes(Routes) ->
    persistent_term:put(?KEY, Routes).

key({Module, Func}) -> {name(Module), name(Func)};
key(Module) -> name(Module).

name(Name) when is_atom(Name) -> atom_to_binary(Name, utf8);
name(Name) when is_binary(Name) -> Name;
name(Name) -> error({badarg, {name, Name}}).
