pub fn run(_c: &super::Ctx, _a: Args) -> anyhow::Result<crate::output::Exit> {
    Ok(crate::output::Exit::Ok)
}
#[derive(clap::Args, Debug)]
pub struct Args {}
