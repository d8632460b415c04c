//! The tasks of an unpacked MiniWoB++ package and their URLs.

use std::path::{Path, PathBuf};

use crate::MiniWobError;

/// `<data_dir>/miniwob/html`.
pub fn html_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("miniwob").join("html")
}

/// Every task: the pages of `html/miniwob` (by file stem) then the flight
/// sites of `html/flight` (as `flight.<site>`), each group sorted.
pub fn list_tasks(html: &Path) -> Result<Vec<String>, MiniWobError> {
    let miniwob = html.join("miniwob");
    let mut tasks: Vec<String> = read_dir(&miniwob)?
        .into_iter()
        .filter_map(|path| {
            let is_html = path.extension().is_some_and(|e| e == "html");
            let stem = path.file_stem()?.to_str()?.to_string();
            is_html.then_some(stem)
        })
        .collect();
    tasks.sort();
    if tasks.is_empty() {
        return Err(MiniWobError::Data(format!(
            "{} holds no task pages (*.html)",
            miniwob.display()
        )));
    }
    let flight = html.join("flight");
    if flight.is_dir() {
        let mut sites: Vec<String> = read_dir(&flight)?
            .into_iter()
            .filter(|dir| dir.join("wrapper.html").is_file())
            .filter_map(|dir| Some(format!("flight.{}", dir.file_name()?.to_str()?)))
            .collect();
        sites.sort();
        tasks.extend(sites);
    }
    Ok(tasks)
}

/// The path of a task's page below the server root.
pub fn task_path(task: &str) -> String {
    match task.strip_prefix("flight.") {
        Some(site) => format!("/flight/{site}/wrapper.html"),
        None => format!("/miniwob/{task}.html"),
    }
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>, MiniWobError> {
    let entries = fs_err::read_dir(dir).map_err(|source| MiniWobError::Io {
        path: dir.display().to_string(),
        source,
    })?;
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| MiniWobError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        paths.push(entry.path());
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_are_listed_from_a_package_layout() {
        let dir = tempfile::tempdir().unwrap();
        let html = html_dir(dir.path());
        std::fs::create_dir_all(html.join("miniwob")).unwrap();
        std::fs::create_dir_all(html.join("flight/AA")).unwrap();
        std::fs::create_dir_all(html.join("flight/flight-common")).unwrap();
        for name in ["click-test.html", "a-task.html", "notes.txt"] {
            std::fs::write(html.join("miniwob").join(name), "").unwrap();
        }
        std::fs::write(html.join("flight/AA/wrapper.html"), "").unwrap();
        assert_eq!(
            list_tasks(&html).unwrap(),
            ["a-task", "click-test", "flight.AA"]
        );
        assert_eq!(task_path("click-test"), "/miniwob/click-test.html");
        assert_eq!(task_path("flight.AA"), "/flight/AA/wrapper.html");
    }

    #[test]
    fn a_missing_directory_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let error = list_tasks(&html_dir(dir.path())).unwrap_err().to_string();
        assert!(error.contains("miniwob/html/miniwob"), "{error}");
    }
}
