//! Assertions for policy tests (`*_test.rhai`) and for the stdlib's own doc examples.

use rhai::plugin::*;

#[export_module]
pub mod testing_fns {
    #[allow(unused_imports)]
    use super::helpers::*;
    use crate::err;
    use rhai::{Dynamic, EvalAltResult, NativeCallContext};

    /// Fails the test unless `cond` is true.
    ///
    /// ```rhai
    /// assert(1 + 1 == 2);
    /// ```
    #[rhai_fn(name = "assert", return_raw)]
    pub fn assert(cond: bool) -> Result<(), Box<EvalAltResult>> {
        if cond {
            Ok(())
        } else {
            Err(err("assertion failed"))
        }
    }

    /// Fails the test with `message` unless `cond` is true.
    ///
    /// ```rhai
    /// assert(2 > 1, "two is more than one");
    /// ```
    #[rhai_fn(name = "assert", return_raw)]
    pub fn assert_msg(cond: bool, message: &str) -> Result<(), Box<EvalAltResult>> {
        if cond {
            Ok(())
        } else {
            Err(err(format!("assertion failed: {message}")))
        }
    }

    /// Fails the test unless `left == right`, showing both values.
    ///
    /// ```rhai
    /// assert_eq([1, 2], [1, 2]);
    /// assert_eq(#{a: 1}, #{a: 1});
    /// assert_eq(2, 2.0);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn assert_eq(
        ctx: NativeCallContext,
        left: Dynamic,
        right: Dynamic,
    ) -> Result<(), Box<EvalAltResult>> {
        if equal(&ctx, &left, &right) {
            Ok(())
        } else {
            Err(err(format!(
                "assertion failed: left == right\n  left:  {left:?}\n  right: {right:?}"
            )))
        }
    }

    /// Fails the test if `left == right`.
    ///
    /// ```rhai
    /// assert_ne("6.1", "6.6");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn assert_ne(
        ctx: NativeCallContext,
        left: Dynamic,
        right: Dynamic,
    ) -> Result<(), Box<EvalAltResult>> {
        if equal(&ctx, &left, &right) {
            Err(err(format!(
                "assertion failed: left != right\n  both: {left:?}"
            )))
        } else {
            Ok(())
        }
    }
}

mod helpers {

    #[allow(unused_imports)]
    use super::*;
    use rhai::{Dynamic, NativeCallContext};

    pub(super) fn equal(ctx: &NativeCallContext, a: &Dynamic, b: &Dynamic) -> bool {
        ctx.call_native_fn::<bool>("==", (a.clone(), b.clone()))
            .unwrap_or(false)
    }
}
