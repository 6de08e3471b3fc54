//! The `files` source: a directory per cluster of JSON exactly as the AWS CLI prints it.

use std::path::PathBuf;

use super::{TargetPoll, TargetSpec};

pub struct FilesSource {
    pub dir: PathBuf,
}

impl FilesSource {
    pub fn new(dir: PathBuf) -> Self {
        FilesSource { dir }
    }

    pub fn poll(&self, target: &TargetSpec) -> TargetPoll {
        let _ = target;
        todo!("files source")
    }
}
